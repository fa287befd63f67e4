"""Training photos are deleted after training, by the bot's own periodic task.

The bot here runs with BOT_PHOTO_RETENTION_HOURS=0 and a 0.2 s sweep interval, so "24 h
after training" becomes "at the next sweep". Completed avatars lose their photos (rows and
files) unless the user chose "keep my photos" in the avatar's details; failed or cancelled
ones keep theirs, since "Try again" trains on them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from nats.js import JetStreamContext

from contracts.jetstream import OBJ_PHOTOS
from sandbox.telegram import TelegramEmulator
from tests.botkit import eventually, press
from tests.hostile.harness import answer_of, live_objects, new_user, reply, seed_avatar

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.usefixtures("guard")]


@pytest.fixture(scope="module")
def bot_overrides() -> dict[str, Any]:
    return {"photo_retention_hours": 0.0, "retention_interval_seconds": 0.2}


async def photo_rows(pool: asyncpg.Pool, avatar_id: Any) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM photos WHERE avatar_id = $1", avatar_id))


async def test_photos_of_a_completed_avatar_are_deleted_after_training(
    emu: TelegramEmulator, pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    uid = await new_user(emu, "Rita", "en")
    done, done_files = await seed_avatar(pool, js, uid, "completed", finished_hours_ago=0.01)
    failed, failed_files = await seed_avatar(pool, js, uid, "error", finished_hours_ago=5)
    running, running_files = await seed_avatar(pool, js, uid, "training")

    async def purged() -> bool:
        return await photo_rows(pool, done) == 0

    await eventually(purged, within=5)
    files = await live_objects(js, OBJ_PHOTOS.name)
    assert not set(done_files) & files
    assert set(failed_files) | set(running_files) <= files
    assert (await photo_rows(pool, failed), await photo_rows(pool, running)) == (2, 2)
    assert await pool.fetchval("SELECT status FROM avatars WHERE id = $1", done) == "completed"


async def test_keep_my_photos_in_the_avatar_details_protects_them(
    emu: TelegramEmulator, pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    """The toggle is pressed while training still runs; when it finishes, nothing goes."""
    uid = await new_user(emu, "Ksenia", "ru")
    avatar, files = await seed_avatar(pool, js, uid, "completed")  # not finished yet
    menu = await reply(emu, uid, button="menu:avatars")
    await press(emu, uid, menu, "menu:avatars")
    listing = await reply(emu, uid, button="avatar:view")
    await press(emu, uid, listing, "avatar:view")
    details = await reply(emu, uid, "Статус:", button="keep:")
    toggle = next(
        b for row in details["reply_markup"]["inline_keyboard"] for b in row
        if b["callback_data"].startswith("keep:")
    )  # fmt: skip
    assert toggle["text"] == "📁 Хранить мои фото: выкл"
    answer = await answer_of(emu, await press(emu, uid, details, "keep:"))
    assert answer["text"] == "Фото для обучения будут сохранены."
    await reply(emu, uid, button=f"keep:{avatar.hex}:0")  # the label now says "on"
    assert await pool.fetchval("SELECT keep_photos FROM avatars WHERE id = $1", avatar)
    await pool.execute(
        "UPDATE avatars SET training_finished_at = now() - interval '1 hour' WHERE id = $1", avatar
    )
    await asyncio.sleep(1.0)  # five sweeps
    assert await photo_rows(pool, avatar) == 2
    assert set(files) <= await live_objects(js, OBJ_PHOTOS.name)
