"""`/delete_me`: everything of the user goes (rows in one transaction, then files, FSM state
and cached statuses), a running training is cancelled first, nobody else is touched; the
erasure is idempotent, and a crash between rows and files leaves only orphans that the
retention sweep removes."""

from __future__ import annotations

import contextlib

import asyncpg
import msgspec
import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, NotFoundError

from contracts import TrainingCancelRequested
from contracts.jetstream import KV_FSM, KV_TRAINING_STATUS, OBJ_IMAGES, OBJ_PHOTOS
from sandbox.telegram import TelegramEmulator
from services.bot.privacy import PrivacyService
from services.bot.retention import RetentionSweeper
from services.kit.db import create_pool
from services.kit.schema import BOT
from tests.botkit import eventually, press
from tests.hostile.harness import (
    Seeded,
    last_id,
    live_objects,
    new_user,
    reply,
    seed_user_data,
    user_rows,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.usefixtures("guard")]
BOT_ID = 123456  # from the suite's token "123456:..."


async def cancel_requests(js: JetStreamContext, avatar_id: str) -> list[TrainingCancelRequested]:
    sub = await js.subscribe("aisha.avatar.cancel_requested", ordered_consumer=True)
    found = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except nats.errors.TimeoutError:
                break
            event = msgspec.json.decode(msg.data, type=TrainingCancelRequested)
            if event.avatar_id == avatar_id:
                found.append(event)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
    return found


async def kv_has(js: JetStreamContext, bucket: str, key: str) -> bool:
    kv = await js.key_value(bucket)
    try:
        entry = await kv.get(key)
    except (KeyNotFoundError, KeyDeletedError, NotFoundError):
        return False
    return entry.value is not None


def seeded_files(seeded: Seeded) -> set[str]:
    return {*seeded.photo_objects, *seeded.image_objects}


async def all_files(js: JetStreamContext) -> set[str]:
    return await live_objects(js, OBJ_PHOTOS.name) | await live_objects(js, OBJ_IMAGES.name)


async def test_delete_me_erases_everything_of_the_user_and_nothing_else(
    emu: TelegramEmulator, pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    uid = await new_user(emu, "Зоя", "ru")
    mine = await seed_user_data(pool, js, uid)
    other = await seed_user_data(pool, js, 700_100_001)
    others_before = await user_rows(pool, other.user_id)
    status_kv = await js.key_value(KV_TRAINING_STATUS.name)
    await status_kv.put(str(mine.training_avatar_id), b'{"progress": 40}')
    await emu.send_command(uid, "new")  # leaves FSM state behind
    await reply(emu, uid, "1–40")
    fsm_key = f"fsm.{BOT_ID}.{uid}.{uid}.default.state"
    assert await kv_has(js, KV_FSM.name, fsm_key)

    mark = last_id(emu, uid)
    await emu.send_command(uid, "delete_me")
    confirm = await reply(emu, uid, "Удалить все ваши данные?", after=mark, button="privacy:")
    assert "аватары (2)" in confirm["text"]
    assert "фото для обучения (2)" in confirm["text"]
    assert "созданные изображения (1)" in confirm["text"]
    await press(emu, uid, confirm, "privacy:erase")
    await reply(emu, uid, "Все ваши данные удалены", after=mark)

    assert all(rows == [] for rows in (await user_rows(pool, uid)).values())
    assert not seeded_files(mine) & await all_files(js)
    assert not await kv_has(js, KV_FSM.name, fsm_key)
    assert not await kv_has(js, KV_TRAINING_STATUS.name, str(mine.training_avatar_id))
    [cancel] = await eventually(lambda: cancel_requests(js, str(mine.training_avatar_id)))
    assert (cancel.user_id, cancel.attempt) == (uid, 1)
    assert await user_rows(pool, other.user_id) == others_before
    assert seeded_files(other) <= await all_files(js)


async def test_cancelling_the_confirm_deletes_nothing(
    emu: TelegramEmulator, pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    uid = await new_user(emu, "Keeper", "en")
    mine = await seed_user_data(pool, js, uid)
    before, mark = await user_rows(pool, uid), last_id(emu, uid)
    await emu.send_command(uid, "delete_me")
    confirm = await reply(emu, uid, "Delete all your data?", after=mark, button="privacy:")
    assert "2 avatars, 2 training photos, 1 generated images" in confirm["text"]
    await press(emu, uid, confirm, "privacy:abort")
    await reply(emu, uid, "Nothing was deleted", after=mark)
    assert await user_rows(pool, uid) == before
    assert seeded_files(mine) <= await all_files(js)


async def test_a_crash_between_rows_and_files_leaves_only_orphans_the_sweep_removes(
    pool: asyncpg.Pool, js: JetStreamContext, hostile_db: str
) -> None:
    """Runs the two halves as the bot's DB role: the rows' transaction commits, the process
    "dies" before removing files; the orphan sweep then removes exactly those files. A
    second erasure finds nothing and fails on nothing."""
    mine = await seed_user_data(pool, js, 700_100_002)
    other = await seed_user_data(pool, js, 700_100_003)
    bot_pool = await create_pool(hostile_db, BOT, max_size=2)
    photos, images = await js.object_store(OBJ_PHOTOS.name), await js.object_store(OBJ_IMAGES.name)
    try:
        privacy = PrivacyService(bot_pool, photos, images)
        erased = await privacy.erase_rows(mine.user_id)  # ... and the process dies here
        assert erased.cancelled == 1
        assert set(erased.photo_objects) | set(erased.image_objects) == seeded_files(mine)
        assert all(rows == [] for rows in (await user_rows(pool, mine.user_id)).values())
        assert seeded_files(mine) <= await all_files(js)  # orphans now
        sweeper = RetentionSweeper(bot_pool, photos, images, retention_hours=24, interval=60)
        assert await sweeper.sweep_orphans(grace=0) >= len(seeded_files(mine))
        files = await all_files(js)
        assert not seeded_files(mine) & files
        assert seeded_files(other) <= files
        again = await privacy.erase(mine.user_id)
        assert (again.avatars, again.photo_objects, again.cancelled) == ([], [], 0)
    finally:
        await bot_pool.close()
