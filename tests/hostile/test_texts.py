"""Hostile text: 10,000-character messages, markup and invisible characters in names,
unknown and admin-only commands. Every reply is valid Telegram HTML (the emulator parses
each one and counts `html_invalid`; `guard` requires zero) and shows user text as text."""

from __future__ import annotations

import asyncpg
import pytest

from sandbox.telegram import TelegramEmulator
from tests.botkit import buttons, forge_press, press
from tests.hostile.conftest import ADMIN_ID
from tests.hostile.harness import Json, forge_message, last_id, new_user, reply, user_rows

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.usefixtures("guard")]
HUGE = "Ж" * 10_000  # Telegram's client caps a message at 4096; a forged update need not
NASTY_NAME = "<b>Eve</b> </i> & \x00\u202etxt.exe\u200b <a href='x'>"
SHOWN_NAME = "<b>Eve</b> </i> & txt.exe <a href='x'>"  # markup as text, invisibles gone


async def new_avatar(emu: TelegramEmulator, uid: int, name: str) -> Json:
    """/new → name → portrait → gender (the question names the avatar); returns the live
    counter message."""
    await emu.send_command(uid, "new")
    await reply(emu, uid, "1–40")
    await emu.send_text(uid, name)
    types = await reply(emu, uid, button="training_type:pick")
    await press(emu, uid, types, "training_type:pick:portrait")
    await press(emu, uid, await reply(emu, uid, button="gender:"), "gender:male")
    return await reply(emu, uid, ": 0 ")


async def test_a_10000_character_name_is_refused_in_russian(
    emu: TelegramEmulator, pool: asyncpg.Pool
) -> None:
    uid = await new_user(emu, "Long", "ru")
    await emu.send_command(uid, "new")
    await reply(emu, uid, "1–40")
    before, mark = await user_rows(pool, uid), last_id(emu, uid)
    forge_message(emu, uid, text=HUGE)
    await reply(emu, uid, "от 1 до 40 видимых символов", after=mark)
    assert await user_rows(pool, uid) == before


@pytest.mark.parametrize("where", ["menu", "rename", "upload"])
async def test_10000_characters_anywhere_get_a_short_answer(
    emu: TelegramEmulator, pool: asyncpg.Pool, where: str
) -> None:
    """Nothing echoes the text back (which would break Telegram's 4096 limit) or keeps it."""
    uid = await new_user(emu, "Long", "en")
    if where != "menu":
        counter = await new_avatar(emu, uid, "Ok")
    if where == "rename":
        avatar = await pool.fetchval("SELECT id FROM avatars WHERE user_id = $1", uid)
        forge_press(emu, uid, counter["message_id"], f"avatar:rename:{avatar.hex}")
        await reply(emu, uid, "Send a new name")
    before, mark = await user_rows(pool, uid), last_id(emu, uid)
    forge_message(emu, uid, text=HUGE)
    answered = await reply(emu, uid, after=mark)
    assert 0 < len(answered["text"]) < 500
    assert await user_rows(pool, uid) == before


async def test_markup_and_invisible_characters_in_an_avatar_name(
    emu: TelegramEmulator, pool: asyncpg.Pool
) -> None:
    """Stored cleaned (no NUL, bidi override or zero-width space), shown as typed text in
    every message and button, never interpreted as HTML."""
    uid = await new_user(emu, "Namer", "en")
    counter = await new_avatar(emu, uid, NASTY_NAME)
    assert await pool.fetchval("SELECT name FROM avatars WHERE user_id = $1", uid) == SHOWN_NAME
    assert SHOWN_NAME in counter["text"]
    versions = [
        v for r in emu.world.messages[uid].values() if r.outgoing for v in [*r.history, r.message]
    ]
    asked = [v for v in versions if "Who is in the photos" in v.get("text", "")]
    assert len(asked) == 1
    assert SHOWN_NAME in asked[0]["text"]
    await emu.send_command(uid, "start")
    menu = await reply(emu, uid, button="menu:avatars", after=counter["message_id"])
    await press(emu, uid, menu, "menu:avatars")
    listing = await reply(emu, uid, button="avatar:view", after=menu["message_id"] - 1)
    assert any(b["text"].startswith(SHOWN_NAME) for b in buttons(listing))
    await press(emu, uid, listing, "avatar:view")
    details = await reply(emu, uid, "Status:")
    assert details["text"].startswith(SHOWN_NAME)
    assert not any(e.get("type") == "text_link" for e in details.get("entities", []))


async def test_markup_in_the_users_own_telegram_name(
    emu: TelegramEmulator, pool: asyncpg.Pool
) -> None:
    user = await emu.create_user("<i>Eve\x00</i> &amp; \u202e", language_code="en")
    uid = int(user["id"])
    await emu.send_command(uid, "start")
    greeting = await reply(emu, uid, button="menu:create")
    assert "Hi, <i>Eve</i> &amp;!" in greeting["text"]
    stored = await pool.fetchval("SELECT first_name FROM users WHERE id = $1", uid)
    assert stored == "<i>Eve</i> &amp;"


@pytest.mark.parametrize(
    ("lang", "command", "expected"),
    [
        ("en", "frobnicate", "didn't understand that command. /help"),
        ("ru", "frobnicate", "не знаю такой команды. /help"),
        ("ru", "start@another_bot", "не знаю такой команды"),
        ("en", "stats", "didn't understand that command"),  # admin-only, and this is no admin
    ],
)
async def test_unknown_commands_get_a_help_hint(
    emu: TelegramEmulator, pool: asyncpg.Pool, lang: str, command: str, expected: str
) -> None:
    uid = await new_user(emu, "Cmd", lang)
    before, mark = await user_rows(pool, uid), last_id(emu, uid)
    await emu.send_command(uid, command)
    answered = await reply(emu, uid, expected, after=mark)
    assert "statist" not in answered["text"].lower()
    assert await user_rows(pool, uid) == before


async def test_admin_commands_answer_admins_only(emu: TelegramEmulator) -> None:
    await emu.create_user("Admin", user_id=ADMIN_ID, language_code="en")
    mark = last_id(emu, ADMIN_ID)
    await emu.send_command(ADMIN_ID, "stats")
    await reply(emu, ADMIN_ID, "Training statistics", after=mark)
    impostor = await new_user(emu, "Admin", "en")  # same name, other id
    mark = last_id(emu, impostor)
    await emu.send_command(impostor, "stats")
    answered = await reply(emu, impostor, after=mark)
    assert "statistics" not in answered["text"]


async def test_a_10000_character_prompt_is_refused_with_its_length(
    emu: TelegramEmulator, pool: asyncpg.Pool
) -> None:
    """/generate → without an avatar → own prompt → 10,000 characters: the answer names the
    length and the limit, the user may send another, no generation is stored."""
    uid = await new_user(emu, "Painter", "ru")
    await emu.send_command(uid, "generate")
    await press(emu, uid, await reply(emu, uid, button="gen:quick"), "gen:quick")
    await press(emu, uid, await reply(emu, uid, button="gen:own"), "gen:own")
    await reply(emu, uid, "Опишите картинку своими словами")
    before, mark = await user_rows(pool, uid), last_id(emu, uid)
    forge_message(emu, uid, text=HUGE)
    await reply(emu, uid, "В этом промпте 10000 символов", after=mark)
    assert await user_rows(pool, uid) == before
