"""Updates from where the bot does not work: groups, and users who blocked it.

The emulator's control API only makes private chats, so the group and the in-flight
message are forged into its world, exactly as Telegram would deliver them.
"""

from __future__ import annotations

import time

import asyncpg
import pytest

from sandbox.telegram import TelegramEmulator
from tests.botkit import eventually, forge_press
from tests.hostile.harness import Json, answer_of, forge_message, last_id, new_user, reply

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.usefixtures("guard")]
GROUP: Json = {"id": -100_777_000_111, "type": "supergroup", "title": "Friends <3"}


def membership(emu: TelegramEmulator, chat: Json, by: int, old: str, new: str) -> None:
    bot = emu.bot_user or {"id": 123456, "is_bot": True, "first_name": "Aisha"}
    emu.world.push_update(
        "my_chat_member",
        {
            "chat": chat,
            "from": emu.world.users[by],
            "date": int(time.time()),
            "old_chat_member": _member(old, bot),
            "new_chat_member": _member(new, bot),
        },
    )


def _member(status: str, bot: Json) -> Json:
    return {"status": status, "user": bot, **({"until_date": 0} if status == "kicked" else {})}


async def test_added_to_a_group_says_once_that_it_works_in_private(
    emu: TelegramEmulator, pool: asyncpg.Pool
) -> None:
    """One short note in the adder's language; group chatter and commands create no user,
    no state; a button there gets an alert; being kicked is not a private block."""
    adder = int((await emu.create_user("Gleb", language_code="ru"))["id"])
    member = int((await emu.create_user("Olga", language_code="en"))["id"])
    emu.world.chats[GROUP["id"]] = GROUP
    membership(emu, GROUP, adder, "left", "member")
    note = await reply(emu, GROUP["id"], "только в личных чатах")
    forge_message(emu, member, GROUP, text="hello everyone, let's make avatars")
    forge_message(emu, member, GROUP, text="/new")
    await reply(emu, GROUP["id"], "only in private chats", after=note["message_id"])
    query = forge_press(emu, member, note["message_id"], "menu:create", chat=GROUP["id"])
    assert "private" in (await answer_of(emu, query))["text"]
    membership(emu, GROUP, adder, "member", "kicked")
    await emu.send_command(member, "start")  # a private update after all of the above
    await reply(emu, member, button="menu:create")
    users = await pool.fetch("SELECT id, is_active FROM users WHERE id = ANY($1)", [adder, member])
    assert [(r["id"], r["is_active"]) for r in users] == [(member, True)]
    assert await pool.fetchval("SELECT count(*) FROM avatars WHERE user_id = $1", member) == 0
    group_messages = [m for m in emu.world.messages[GROUP["id"]].values() if m.outgoing]
    assert len(group_messages) == 2  # the note, the answer to /new; chatter got nothing


async def test_a_message_arriving_after_the_user_blocked_the_bot(
    emu: TelegramEmulator, pool: asyncpg.Pool
) -> None:
    """The answer meets a 403: the user is marked inactive, no error is logged (`guard`).
    Writing again (unblocking) makes them active and answered."""
    uid = await new_user(emu, "Dina", "en")
    await emu.set_blocked(uid, True)

    async def inactive() -> bool:
        return bool(await pool.fetchval("SELECT NOT is_active FROM users WHERE id = $1", uid))

    await eventually(inactive)
    sent = emu.world.stats["error:403"]
    forge_message(emu, uid, text="/help")  # was in flight when they blocked us
    await eventually(lambda: _grew(emu, "error:403", sent))
    await eventually(inactive)
    # the one refused answer, not retried into a storm (`guard` then checks the rest)
    assert await emu.violations() == {"blocked_user": 1}
    await emu.reset_violations()
    await emu.set_blocked(uid, False)
    mark = last_id(emu, uid)
    await emu.send_command(uid, "help")
    await reply(emu, uid, "How it works", after=mark)
    assert await pool.fetchval("SELECT is_active FROM users WHERE id = $1", uid)


async def _grew(emu: TelegramEmulator, stat: str, before: int) -> bool:
    return emu.world.stats[stat] > before
