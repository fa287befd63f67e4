"""Forged and stale callback data, other users' ids, and hostile deep links.

Every `CallbackData` factory the bot has (found by introspection, so new features are
covered the day they land) is fed garbage, huge numbers and the ids of another user's
avatar, generation and image, for every action it knows. The attacker gets an answer to
every press; the victim's rows and files stay exactly as they were, and so do the
attacker's; nothing is logged as an error.
"""

from __future__ import annotations

import itertools
import types
import typing
import uuid
from enum import Enum
from typing import Any

import asyncpg
import pytest
from nats.js import JetStreamContext

from contracts.jetstream import OBJ_IMAGES, OBJ_PHOTOS
from sandbox.telegram import TelegramEmulator
from tests.botkit import eventually, forge_press, press
from tests.hostile.harness import (
    Seeded,
    answer_of,
    callback_factories,
    last_id,
    live_objects,
    new_user,
    reply,
    seed_user_data,
    user_rows,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.usefixtures("guard")]
GARBAGE = [
    "",
    ":",
    "::::::::",
    "💣" * 16,
    "a" * 300,
    "\x00\x01\x02",
    "<b>menu</b>:main",
    "menu:main:extra",
    "training:start:" + "0" * 32,
    "avatar:view:../../etc/passwd",
]


def _base(annotation: Any) -> Any:
    """Strip Annotated[...] and `| None` down to the type."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        return _base(annotation)
    return annotation


def choices(annotation: Any) -> list[str] | None:
    """The legal values of a Literal/Enum field; None for id-like fields."""
    base = _base(annotation)
    if typing.get_origin(base) is typing.Literal:
        return [str(v.value if isinstance(v, Enum) else v) for v in typing.get_args(base)]
    if isinstance(base, type) and issubclass(base, Enum):
        return [str(m.value) for m in base]
    if base is bool:
        return ["0", "1"]
    return None


def hostile_ids(annotation: Any, victim: Seeded) -> list[str]:
    base = _base(annotation)
    if base is uuid.UUID:
        mine = [victim.avatar_id, victim.training_avatar_id, victim.generation_id, victim.image_id]
        return [u.hex for u in mine] + [uuid.uuid4().hex, "f" * 200]
    if base is int:
        return [str(2**63), "9" * 40, "-1", str(victim.user_id)]
    return [victim.share_token, victim.revoked_token, "x" * 60, "%00"]


def forged_payloads(victim: Seeded) -> list[str]:
    """For each factory: every legal action × every hostile id, and a wrong action."""
    payloads = list(GARBAGE)
    for cls in callback_factories():
        fields = list(cls.model_fields.items())
        legal = {name: choices(f.annotation) for name, f in fields}
        ids = [name for name, values in legal.items() if values is None]
        if legal and not ids:  # no id to forge: only an action nobody defined
            payloads.append(":".join([cls.__prefix__, *["zz" for _ in fields]]))
            continue
        actions = [v for n, v in legal.items() if v is not None]
        for combo in itertools.islice(itertools.product(*actions), 12):
            for target in ids:
                for value in hostile_ids(dict(fields)[target].annotation, victim):
                    chosen = iter(combo)
                    parts = [
                        value if name == target
                        else next(chosen) if legal[name] is not None
                        else uuid.uuid4().hex
                        for name, _ in fields
                    ]  # fmt: skip
                    payloads.append(":".join([cls.__prefix__, *parts]))
    return payloads


async def victim_state(pool: asyncpg.Pool, js: JetStreamContext, victim: Seeded) -> Any:
    return (
        await user_rows(pool, victim.user_id),
        await live_objects(js, OBJ_PHOTOS.name),
        await live_objects(js, OBJ_IMAGES.name),
    )


async def test_forged_callback_data_is_answered_and_changes_nothing(
    emu: TelegramEmulator, pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    victim = await seed_user_data(pool, js, 700_000_001)
    attacker = await new_user(emu, "Mallory", "ru")
    menu = await reply(emu, attacker, button="menu:create")
    payloads = forged_payloads(victim)
    assert len(callback_factories()) >= 6
    assert len(payloads) > 60
    before = await victim_state(pool, js, victim), await user_rows(pool, attacker)
    queries = [forge_press(emu, attacker, menu["message_id"], data) for data in payloads]
    for query_id in queries:  # every press gets an answer (no endless spinner)
        await answer_of(emu, query_id, within=20)
    after = await victim_state(pool, js, victim), await user_rows(pool, attacker)
    assert after == before


async def test_another_users_avatar_is_not_found_in_russian(
    emu: TelegramEmulator, pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    victim = await seed_user_data(pool, js, 700_000_002)
    attacker = await new_user(emu, "Ворон", "ru")
    menu = await reply(emu, attacker, button="menu:create")
    for data in (
        f"avatar:delete_yes:{victim.avatar_id.hex}",
        f"training:cancel:{victim.training_avatar_id.hex}",
        f"keep:{victim.avatar_id.hex}:1",
    ):
        answer = await answer_of(emu, forge_press(emu, attacker, menu["message_id"], data))
        assert answer["text"] == "Аватар не найден."
    row = await pool.fetchrow(
        "SELECT status, keep_photos FROM avatars WHERE id = $1", victim.avatar_id
    )
    assert (row["status"], row["keep_photos"]) == ("completed", False)


async def test_a_stale_button_after_the_avatar_is_gone(
    emu: TelegramEmulator, pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    """The details of an avatar stay on screen after it is deleted; pressing them later is
    answered "not found", and pressing a navigation button twice is not an error."""
    uid = await new_user(emu, "Tess", "en")
    seeded = await seed_user_data(pool, js, uid)
    menu = await reply(emu, uid, button="menu:avatars")
    await press(emu, uid, menu, "menu:avatars")
    listing = await reply(emu, uid, button="avatar:view")
    await emu.press_button(uid, listing["message_id"], f"avatar:view:{seeded.avatar_id.hex}")
    details = await reply(emu, uid, "Status:", button="avatar:delete")
    await pool.execute("DELETE FROM avatars WHERE id = $1", seeded.avatar_id)
    answer = await answer_of(emu, await press(emu, uid, details, "avatar:rename"))
    assert answer["text"] == "This avatar was not found."
    help_data = "menu:help"
    first = forge_press(emu, uid, details["message_id"], help_data)
    await answer_of(emu, first)
    await reply(emu, uid, "How it works", after=details["message_id"] - 1)
    second = forge_press(emu, uid, details["message_id"], help_data)  # same text again
    await answer_of(emu, second)


@pytest.mark.parametrize(
    "payload",
    [
        "share_" + "A" * 22,
        "share_../../../etc/passwd",
        "<b>bold</b>&amp;",
        "x" * 4000,
        "avatar_" + uuid.uuid4().hex,
    ],
    ids=["unknown-token", "traversal", "html", "huge", "unknown-kind"],
)
async def test_hostile_deep_links_get_an_answer(
    emu: TelegramEmulator, pool: asyncpg.Pool, payload: str
) -> None:
    uid = await new_user(emu, "Linker", "en")
    before, mark = await user_rows(pool, uid), last_id(emu, uid)
    await emu.send_command(uid, "start", payload)
    answered = await reply(emu, uid, after=mark)
    assert answered["text"]
    assert not any("photo" in m for m in await emu.bot_messages(uid))
    assert await user_rows(pool, uid) == before


async def test_another_users_revoked_share_link_shows_nothing(
    emu: TelegramEmulator, pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    victim = await seed_user_data(pool, js, 700_000_003)
    uid = await new_user(emu, "Peeker", "en")
    mark = last_id(emu, uid)
    await emu.send_command(uid, "start", f"share_{victim.revoked_token}")
    await reply(emu, uid, after=mark)

    async def no_photo() -> bool:
        return not any("photo" in m for m in await emu.bot_messages(uid))

    assert await eventually(no_photo)
