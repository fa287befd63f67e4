"""The training check in the bot, with the real photo-gate worker, real NATS and PostgreSQL:
a finished portrait training is not called ready until its test portraits are scored; a
poor one offers a free retrain (the weakest photos left out, the request free and marked
a redo) or the training's credits back, each once; a training with too few faces to compare
with is ready at once, saying so. The backend is played as in the other integration tests
(events straight to JetStream, result pictures stored as the status service would)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore

from contracts import (
    GenerationRequested,
    TrainingCompleted,
    TrainingRequested,
    new_event_id,
    utcnow,
)
from sandbox.telegram import TelegramEmulator
from services.bot.gallery.service import ImageService
from services.kit import credits
from tests import faces
from tests.botkit import (
    ADMIN_ID,
    BotUnderTest,
    Json,
    answer_of,
    bot_message,
    buttons,
    events_of,
    eventually,
    forge_press,
    photo,
    publish,
    start_training,
)
from tests.integration import generation_harness as harness
from tests.integration.generation_harness import complete
from tests.integration.test_bot_flow import create_avatar_by_buttons

images_store = harness.images_store
PRICE = 7  # what the test's trainer "charged" for attempt 1


def _stranger() -> bytes:
    return faces.jpeg(faces.fit(faces.original("biden.jpg")))


async def _trained(
    emu: TelegramEmulator, js: JetStreamContext, pool: asyncpg.Pool, uid: int, photos: int = 10
) -> tuple[str, Json]:
    """An avatar trained on `photos` real photos of one person, charged `PRICE` as the
    trainer would, and its training announced finished; returns its id and the progress
    message."""
    await create_avatar_by_buttons(emu, uid, "Barack")
    await emu.send_album(uid, [photo(seed) for seed in range(min(photos, 10))])
    for seed in range(10, photos):
        await emu.send_photo(uid, photo(seed))
    counter = await bot_message(
        emu, uid, text=f"{photos} photos", button="training:start", within=30
    )
    await start_training(emu, uid, counter)
    await bot_message(emu, uid, text="queue", button="training:cancel")
    avatar_id = str(await pool.fetchval("SELECT id FROM avatars WHERE user_id = $1", uid))
    async with pool.acquire() as conn, conn.transaction():
        await credits.post(
            conn, user_id=uid, kind=credits.Kind.TRAINING_CHARGE, amount=-PRICE,
            key=credits.training_charge_key(avatar_id, 1),
        )  # fmt: skip
    await _finish(js, avatar_id, uid, 1)
    return avatar_id, counter


async def _finish(js: JetStreamContext, avatar_id: str, uid: int, attempt: int) -> None:
    await publish(js, TrainingCompleted(
        event_id=new_event_id(), occurred_at=utcnow(), avatar_id=avatar_id, user_id=uid,
        attempt=attempt, request_id=f"req-{attempt}", lora_url="https://fal.example/l.safetensors",
    ))  # fmt: skip


async def _check(pool: asyncpg.Pool, avatar_id: str, attempt: int) -> asyncpg.Record:
    async def found() -> asyncpg.Record | None:
        return await pool.fetchrow(
            "SELECT * FROM training_checks WHERE avatar_id = $1 AND attempt = $2",
            uuid.UUID(avatar_id), attempt,
        )  # fmt: skip

    return await eventually(found)  # type: ignore[no-any-return]


async def _state(pool: asyncpg.Pool, avatar_id: str, attempt: int, want: str) -> bool:
    return (await _check(pool, avatar_id, attempt))["state"] == want


async def test_a_good_training_is_ready_only_after_its_test_portraits_score_well(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool,
    images_store: ObjectStore,
) -> None:  # fmt: skip
    uid = (await emu.create_user("Good", language_code="en"))["id"]
    avatar_id, counter = await _trained(emu, js, admin_pool, uid)

    # not "ready" yet: the progress message (edited, silent) says the check runs
    checking = await bot_message(emu, uid, text="test portraits")
    assert checking["message_id"] == counter["message_id"]
    check = await _check(admin_pool, avatar_id, 1)
    assert (check["state"], check["redo"], check["paid_attempt"]) == ("checking", False, 1)
    requested = await eventually(lambda: events_of(
        js, "aisha.generation.requested", GenerationRequested, user_id=uid
    ))  # fmt: skip
    assert len(requested) == 1
    assert requested[0].credits == 0  # the product's check is never charged
    assert requested[0].num_images == 2
    assert "ohwx" in requested[0].prompt
    assert not [m for m in await emu.bot_messages(uid) if "is ready" in (m.get("text") or "")]

    await complete(js, admin_pool, images_store, str(check["generation_id"]), [photo(3), photo(7)])
    ready = await bot_message(emu, uid, text="is ready", within=20)
    assert "Likeness check:" in ready["text"]
    assert emu.world.messages[uid][ready["message_id"]].notified
    album = [m for m in await emu.bot_messages(uid) if m.get("media_group_id")]
    assert len(album) == 2
    assert "Test portrait 1" in album[0]["caption"]
    assert "(high)" in album[0]["caption"]
    assert not emu.world.messages[uid][album[0]["message_id"]].notified  # one ping: the verdict
    await emu.wait_for(lambda: emu.world.messages[uid][counter["message_id"]].deleted, 10)
    done = await _check(admin_pool, avatar_id, 1)
    assert done["state"] == "passed"
    assert done["score"] >= 70
    assert len(done["scores"]) == 2
    # the test portraits are the product's: not in the user's gallery
    page = await harness_gallery_count(admin_pool, uid)
    assert page == 0


async def harness_gallery_count(pool: asyncpg.Pool, uid: int) -> int:

    return (await ImageService(pool).page(uid, 0, avatar_id=None, favorites=False)).total


async def test_a_poor_training_is_refunded_once_when_the_retrain_is_refused(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool,
    images_store: ObjectStore,
) -> None:  # fmt: skip
    uid = (await emu.create_user("Poor", language_code="en"))["id"]
    avatar_id, _ = await _trained(emu, js, admin_pool, uid)
    check = await _check(admin_pool, avatar_id, 1)
    before = await credits.balance(admin_pool, uid)
    await complete(
        js, admin_pool, images_store, str(check["generation_id"]), [_stranger(), _stranger()]
    )
    offer = await bot_message(emu, uid, text="do not look enough like you", within=20)
    assert "is ready" not in offer["text"]
    labels = [b["text"] for b in buttons(offer)]
    assert labels == ["🔁 Retrain free", f"↩️ Refund {PRICE} credits", "✅ Keep it as it is"]
    assert emu.world.messages[uid][offer["message_id"]].notified
    refund = next(b["callback_data"] for b in buttons(offer) if "refund" in b["callback_data"])

    first = forge_press(emu, uid, offer["message_id"], refund)
    second = forge_press(emu, uid, offer["message_id"], refund)  # a double press
    answers = [await answer_of(emu, uid, first), await answer_of(emu, uid, second)]
    assert sum(1 for a in answers if "already been answered" in (a.get("text") or "")) == 1
    await bot_message(emu, uid, text="credits are back on your balance")
    assert await credits.balance(admin_pool, uid) == before + PRICE
    refunds = await admin_pool.fetchval(
        "SELECT count(*) FROM credit_entries WHERE user_id = $1 AND kind = 'refund'", uid
    )
    assert refunds == 1
    row = await _check(admin_pool, avatar_id, 1)
    assert (row["state"], row["decision"]) == ("poor", "refund")
    status = await admin_pool.fetchval(
        "SELECT status FROM avatars WHERE id = $1", uuid.UUID(avatar_id)
    )
    assert status == "cancelled"  # retired: no free use of a refunded model

    # the admin sees the check, its decision and its cost
    await emu.create_user("Admin", user_id=ADMIN_ID)
    await emu.send_command(ADMIN_ID, "stats")
    stats = await bot_message(emu, ADMIN_ID, text="Training checks")
    assert "1 poor (retrained free 0, refunded 1, kept 0)" in stats["text"]


async def test_a_poor_training_is_retrained_free_without_its_weakest_photos(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool,
    images_store: ObjectStore,
) -> None:  # fmt: skip
    uid = (await emu.create_user("Redo", language_code="en"))["id"]
    avatar_id, _ = await _trained(emu, js, admin_pool, uid, photos=12)
    # two photos the gate warned about (as it would a blurred one): left out by the redo
    await admin_pool.execute(
        "UPDATE photos SET warnings = '{blurry}' WHERE id IN (SELECT id FROM photos "
        "WHERE avatar_id = $1 ORDER BY created_at LIMIT 2)",
        uuid.UUID(avatar_id),
    )
    check = await _check(admin_pool, avatar_id, 1)
    await complete(
        js, admin_pool, images_store, str(check["generation_id"]), [_stranger(), _stranger()]
    )
    offer = await bot_message(emu, uid, text="do not look enough like you", within=20)
    before = await credits.balance(admin_pool, uid)
    redo = next(b["callback_data"] for b in buttons(offer) if b["callback_data"].startswith(
        "training:redo"))  # fmt: skip
    answer = await answer_of(emu, uid, forge_press(emu, uid, offer["message_id"], redo))
    assert "Photos left out: 2" in answer["text"]
    left = await admin_pool.fetch(
        "SELECT warnings FROM photos WHERE avatar_id = $1 AND status = 'rejected'",
        uuid.UUID(avatar_id),
    )
    assert [r["warnings"] for r in left] == [["blurry"], ["blurry"]]

    requests = await eventually(lambda: _requests(js, avatar_id, 2))
    assert (requests[-1].credits, requests[-1].redo, requests[-1].photo_count) == (0, True, 10)
    row = await admin_pool.fetchrow(
        "SELECT status, training_attempt FROM avatars WHERE id = $1", uuid.UUID(avatar_id)
    )
    assert (row["status"], row["training_attempt"]) == ("training", 2)
    assert await credits.balance(admin_pool, uid) == before  # nothing charged for our redo

    # the redo's check is poor again: no second redo, the refund gives back attempt 1's charge
    await _finish(js, avatar_id, uid, 2)
    again = await _check(admin_pool, avatar_id, 2)
    assert (again["redo"], again["paid_attempt"]) == (True, 1)
    await complete(
        js, admin_pool, images_store, str(again["generation_id"]), [_stranger(), _stranger()]
    )
    last = await bot_message(emu, uid, text="did not help enough", within=20)
    assert [b["text"] for b in buttons(last)] == [
        f"↩️ Refund {PRICE} credits",
        "✅ Keep it as it is",
    ]
    forged = forge_press(emu, uid, last["message_id"], redo)  # a second redo is not offered
    assert "already been answered" in (await answer_of(emu, uid, forged))["text"]
    keep = next(b["callback_data"] for b in buttons(last) if "keep" in b["callback_data"])
    await answer_of(emu, uid, forge_press(emu, uid, last["message_id"], keep))
    await bot_message(emu, uid, text="is ready")
    assert (await _check(admin_pool, avatar_id, 2))["decision"] == "keep"


async def _requests(
    js: JetStreamContext, avatar_id: str, want: int
) -> list[TrainingRequested] | None:
    found = await events_of(
        js, "aisha.avatar.training_requested", TrainingRequested, avatar_id=avatar_id
    )
    return found if len(found) >= want else None


async def test_too_few_faces_to_compare_with_is_ready_at_once_and_says_why(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool,
) -> None:  # fmt: skip
    uid = (await emu.create_user("Few", language_code="en"))["id"]
    await create_avatar_by_buttons(emu, uid, "Мало")
    await emu.send_album(uid, [photo(seed) for seed in range(10)])
    counter = await bot_message(emu, uid, button="training:start", within=30)
    await start_training(emu, uid, counter)
    await bot_message(emu, uid, button="training:cancel")
    avatar_id = str(await admin_pool.fetchval("SELECT id FROM avatars WHERE user_id = $1", uid))
    # a reference set of one photo (as when the gate found a face in only one of them); the
    # user has switched to Russian meanwhile
    await admin_pool.execute(
        "UPDATE avatars SET likeness_faces = 1 WHERE id = $1", uuid.UUID(avatar_id)
    )
    await admin_pool.execute("UPDATE users SET language = 'ru' WHERE id = $1", uid)
    await _finish(js, avatar_id, uid, 1)
    ready = await bot_message(emu, uid, text="готов", within=20)
    assert "Сходство не проверено" in ready["text"]
    check = await _check(admin_pool, avatar_id, 1)
    assert (check["state"], check["reason"], check["generation_id"]) == (
        "skipped", "weak_identity", None,
    )  # fmt: skip
    await asyncio.sleep(0.5)
    assert not await events_of(js, "aisha.generation.requested", GenerationRequested, user_id=uid)


async def test_a_check_whose_message_was_buried_ends_by_deleting_the_message_shown(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool,
    images_store: ObjectStore,
) -> None:  # fmt: skip
    uid = (await emu.create_user("Buried", language_code="en"))["id"]
    await create_avatar_by_buttons(emu, uid, "Barack")
    await emu.send_album(uid, [photo(seed) for seed in range(10)])
    counter = await bot_message(emu, uid, text="10 photos", button="training:start", within=30)
    await start_training(emu, uid, counter)
    await bot_message(emu, uid, text="queue", button="training:cancel")
    for _ in range(6):  # the user chats on: the progress message scrolls out of sight
        await emu.send_command(uid, "help")
    await eventually(lambda: _replies(emu, uid, 6))
    avatar_id = str(await admin_pool.fetchval("SELECT id FROM avatars WHERE user_id = $1", uid))
    await _finish(js, avatar_id, uid, 1)
    checking = await bot_message(emu, uid, text="test portraits")
    assert checking["message_id"] != counter["message_id"]  # re-sent at the bottom
    check = await _check(admin_pool, avatar_id, 1)

    async def followed() -> bool:
        return await admin_pool.fetchval(
            "SELECT progress_message_id FROM generations WHERE id = $1", check["generation_id"]
        ) == checking["message_id"]  # fmt: skip

    await eventually(followed)
    await complete(js, admin_pool, images_store, str(check["generation_id"]), [photo(3), photo(7)])
    await bot_message(emu, uid, text="is ready", within=20)
    await emu.wait_for(lambda: emu.world.messages[uid][checking["message_id"]].deleted, 10)


async def _replies(emu: TelegramEmulator, uid: int, want: int) -> bool:
    helps = [m for m in await emu.bot_messages(uid) if "/packs" in (m.get("text") or "")]
    return len(helps) >= want
