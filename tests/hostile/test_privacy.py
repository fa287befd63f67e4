"""`/delete_me`: everything of the user goes (rows in one transaction, then files — our LoRA
copies among them —, FSM state, photo-to-prompt reference pictures, published event copies in the
outbox), a running training is cancelled first, nobody else is touched, financial records
stay; the erasure is idempotent, and a crash between rows and files leaves only orphans that
the retention sweep removes."""

from __future__ import annotations

import contextlib

import asyncpg
import msgspec
import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, NotFoundError

from contracts import (
    DescribeRequested,
    PromptDescribed,
    TrainingCancelRequested,
    encode,
    new_event_id,
    utcnow,
)
from contracts.jetstream import (
    BOT_GENERATION,
    KV_FSM,
    OBJ_IMAGES,
    OBJ_PHOTOS,
)
from sandbox.telegram import TelegramEmulator
from services.bot.privacy.retention import RetentionSweeper
from services.bot.privacy.service import PrivacyService
from services.kit import credits
from services.kit.db import create_pool
from services.kit.schema import BOT
from tests.botkit import consumed, eventually, press
from tests.hostile.harness import (
    Seeded,
    last_id,
    live_objects,
    new_user,
    photo,
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
    """Every file of the user we hold: photos, generated images, our LoRA copy + config."""
    assert len(seeded.lora_objects) == 2
    return {*seeded.photo_objects, *seeded.image_objects, *seeded.lora_objects}


async def all_files(js: JetStreamContext) -> set[str]:
    return await live_objects(js, OBJ_PHOTOS.name) | await live_objects(js, OBJ_IMAGES.name)


async def test_delete_me_erases_everything_of_the_user_and_nothing_else(
    emu: TelegramEmulator, pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    uid = await new_user(emu, "Зоя", "ru")
    mine = await seed_user_data(pool, js, uid)
    other = await seed_user_data(pool, js, 700_100_001)
    others_before = await user_rows(pool, other.user_id)
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
        named = {*erased.photo_objects, *erased.image_objects, *erased.lora_objects}
        assert named == seeded_files(mine)
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


# --- photo to prompt: the reference pictures (no row names them) ------------------------------


async def describe(emu: TelegramEmulator, uid: int, seed: int) -> None:
    """/generate → the avatar → photo to prompt → a picture: the bot stores the reference
    and queues `DescribeRequested` (nobody answers yet)."""
    mark = last_id(emu, uid)
    await emu.send_command(uid, "generate")
    home = await reply(emu, uid, after=mark, button="gen:avatar:")
    await press(emu, uid, home, "gen:avatar:")
    source = await reply(emu, uid, after=mark, button="gen:describe")
    await press(emu, uid, source, "gen:describe")
    await reply(emu, uid, "Send a picture you like", after=mark)
    await emu.send_photo(uid, photo(300 + seed))
    await reply(emu, uid, "Looking at the picture", after=mark)


async def describe_requests(pool: asyncpg.Pool, uid: int) -> list[DescribeRequested]:
    rows = await pool.fetch(
        "SELECT payload FROM outbox WHERE subject = $1 ORDER BY created_at",
        DescribeRequested.subject,
    )
    found = [msgspec.json.decode(r["payload"], type=DescribeRequested) for r in rows]
    return [request for request in found if request.user_id == uid]


async def outbox_naming(pool: asyncpg.Pool, uid: int) -> list[str]:
    """Subjects of the outbox rows whose event names the user."""
    rows = await pool.fetch(
        "SELECT subject FROM outbox WHERE position($1::bytea in payload) > 0 "
        "OR position($2::bytea in payload) > 0 ORDER BY created_at",
        f'"user_id":{uid},'.encode(),
        f'"user_id":{uid}}}'.encode(),
    )
    return [r["subject"] for r in rows]


async def images(js: JetStreamContext) -> set[str]:
    return await live_objects(js, OBJ_IMAGES.name)


async def test_delete_me_removes_reference_pictures_and_event_copies_keeps_the_ledger(
    emu: TelegramEmulator, pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    uid = await new_user(emu, "Refs", "en")
    other = await new_user(emu, "Bystander", "en")
    seeded = await seed_user_data(pool, js, uid)
    await seed_user_data(pool, js, other)
    async with pool.acquire() as conn, conn.transaction():
        await credits.post(
            conn, user_id=uid, kind=credits.Kind.PURCHASE, amount=50, key=f"test:{uid}"
        )
    ledger = await credits.history(pool, uid)
    await describe(emu, uid, 1)  # abandoned by the next /generate: no longer in the FSM
    await describe(emu, uid, 2)  # in flight
    await describe(emu, other, 3)
    requests = await eventually(lambda: _requests(pool, uid, 2))
    mine = {r.object_name for r in requests}
    [theirs] = [r.object_name for r in await eventually(lambda: _requests(pool, other, 1))]
    assert {*mine, theirs} <= await images(js)
    # published by now (the relay's doing), so kept in the outbox for 24 h
    await eventually(lambda: _published(pool, DescribeRequested.subject, uid, 2))
    others_outbox = await outbox_naming(pool, other)
    assert DescribeRequested.subject in others_outbox

    mark = last_id(emu, uid)
    await emu.send_command(uid, "delete_me")
    confirm = await reply(emu, uid, "Delete all your data?", after=mark, button="privacy:")
    assert "photo to prompt" in confirm["text"]
    assert "credit history" in confirm["text"]  # what is kept, said before the confirm
    await press(emu, uid, confirm, "privacy:erase")
    await reply(emu, uid, "All your data has been deleted", after=mark)

    assert not mine & await images(js)
    assert theirs in await images(js)
    # only the cancel the erasure itself queued still names the user, and it got out
    assert set(await outbox_naming(pool, uid)) <= {TrainingCancelRequested.subject}
    assert await eventually(lambda: cancel_requests(js, str(seeded.training_avatar_id)))
    assert await outbox_naming(pool, other) == others_outbox
    # the ledger is a financial record and outlives the user's data
    assert await credits.history(pool, uid) == ledger
    assert ledger[0].balance_after >= 50
    assert all(rows == [] for rows in (await user_rows(pool, uid)).values())

    # the trainer's answer to the in-flight request comes after all: handled without an
    # error (the guard checks the log), and nothing comes back
    seq = await described(js, requests[1], "A cat on a sofa")
    await consumed(js, BOT_GENERATION, seq)
    assert not mine & await images(js)


async def test_a_reference_goes_when_its_answer_comes_unawaited_or_else_with_the_sweep(
    emu: TelegramEmulator, pool: asyncpg.Pool, js: JetStreamContext, hostile_db: str
) -> None:
    """The user moved on before the description came back: the reference goes when it
    does. One whose answer never came goes with the retention sweep, once older than the
    grace."""
    uid = await new_user(emu, "Mover", "en")
    await seed_user_data(pool, js, uid)
    await describe(emu, uid, 4)
    [request] = await eventually(lambda: _requests(pool, uid, 1))
    mark = last_id(emu, uid)
    await emu.send_command(uid, "start")  # moves on
    await reply(emu, uid, after=mark, button="menu:create")
    await described(js, request, "A dog in the park")

    async def gone() -> bool:
        return request.object_name not in await images(js)

    assert await eventually(gone)

    store = await js.object_store(OBJ_IMAGES.name)
    await store.put("refs/lost-answer.jpg", photo(400))
    bot_pool = await create_pool(hostile_db, BOT, max_size=2)
    try:
        photos = await js.object_store(OBJ_PHOTOS.name)
        sweeper = RetentionSweeper(bot_pool, photos, store, retention_hours=24, interval=60)
        await sweeper.sweep_orphans(grace=3600)
        assert "refs/lost-answer.jpg" in await images(js)  # may still be awaited
        assert await sweeper.sweep_orphans(grace=0) >= 1
    finally:
        await bot_pool.close()
    assert not {n for n in await images(js) if n.startswith("refs/")}


async def described(js: JetStreamContext, request: DescribeRequested, caption: str) -> int:
    """The trainer's answer; returns its stream sequence."""
    event = PromptDescribed(
        event_id=new_event_id(), occurred_at=utcnow(), request_id=request.request_id,
        user_id=request.user_id, avatar_id=request.avatar_id, caption=caption,
    )  # fmt: skip
    ack = await js.publish(event.subject, encode(event), headers={"Nats-Msg-Id": event.event_id})
    return int(ack.seq)


async def _requests(pool: asyncpg.Pool, uid: int, count: int) -> list[DescribeRequested] | None:
    found = await describe_requests(pool, uid)
    return found if len(found) == count else None


async def _published(pool: asyncpg.Pool, subject: str, uid: int, at_least: int) -> bool:
    """At least `at_least` of the user's own `subject` rows are published (the module's
    database also holds earlier tests' rows)."""
    count = await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE subject = $1 AND published_at IS NOT NULL"
        " AND (position($2::bytea in payload) > 0 OR position($3::bytea in payload) > 0)",
        subject,
        f'"user_id":{uid},'.encode(),
        f'"user_id":{uid}}}'.encode(),
    )
    return bool(count >= at_least)


async def test_after_delete_me_the_user_starts_over_at_once_in_their_new_language(
    emu: TelegramEmulator, pool: asyncpg.Pool
) -> None:
    """The bot keeps a user's row in memory between updates (`AvatarService.upsert_user`):
    a language change and an erasure must reach the very next update, not a minute later."""
    uid = await new_user(emu, "Lena", "en")
    mark = last_id(emu, uid)
    await emu.send_command(uid, "settings")
    languages = await reply(emu, uid, after=mark, button="lang:ru")
    await press(emu, uid, languages, "lang:ru")
    mark = last_id(emu, uid)
    await emu.send_command(uid, "help")
    await reply(emu, uid, "Как это работает", after=mark)
    assert (await pool.fetchval("SELECT language FROM users WHERE id = $1", uid)) == "ru"

    mark = last_id(emu, uid)
    await emu.send_command(uid, "delete_me")
    confirm = await reply(emu, uid, "Удалить все ваши данные?", after=mark, button="privacy:")
    await press(emu, uid, confirm, "privacy:erase")
    await reply(emu, uid, "Все ваши данные удалены", after=mark)
    assert await pool.fetchval("SELECT count(*) FROM users WHERE id = $1", uid) == 0

    mark = last_id(emu, uid)
    await emu.send_command(uid, "new")  # the row comes back (in Telegram's language), then
    await reply(emu, uid, after=mark)  # the name is asked
    mark = last_id(emu, uid)
    emu.users.send_text(uid, "Again")
    await reply(emu, uid, after=mark, button="training_type:pick")
    assert await pool.fetchval("SELECT language FROM users WHERE id = $1", uid) == "en"


async def test_deleting_an_avatar_removes_our_copy_of_its_lora(
    emu: TelegramEmulator, pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    """The avatar's row goes, then its photos and our LoRA copy (weights and config); the
    user's other files stay."""
    uid = await new_user(emu, "Lora", "en")
    mine = await seed_user_data(pool, js, uid)
    assert set(mine.lora_objects) <= await all_files(js)
    menu = await reply(emu, uid, button="menu:avatars")
    await press(emu, uid, menu, "menu:avatars")
    listing = await reply(emu, uid, button="avatar:view")
    await emu.press_button(uid, listing["message_id"], f"avatar:view:{mine.avatar_id.hex}")
    details = await reply(emu, uid, "Status:", button="avatar:delete")
    mark = last_id(emu, uid)
    await press(emu, uid, details, "avatar:delete")
    confirm = await reply(emu, uid, after=mark, button="avatar:delete_yes")
    await press(emu, uid, confirm, "avatar:delete_yes")
    await reply(emu, uid, "deleted", after=mark)
    files = await all_files(js)
    assert not {*mine.lora_objects, *mine.photo_objects} & files
    assert set(mine.image_objects) <= files  # the gallery is not the avatar's
    assert await pool.fetchval("SELECT count(*) FROM avatars WHERE id = $1", mine.avatar_id) == 0
