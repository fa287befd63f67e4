"""Credits given back (or not) when a job ends, and the bot's balance check before a job.

Real aiogram polling the Telegram emulator, real NATS and PostgreSQL. The test plays the
trainer and the status service: it posts the charge the trainer would have posted when it
reserved the FAL job (`credits.post` under `training_charge_key` / `generation_charge_key`)
and publishes the end event. Refund policy: a failure that was not the user's doing gives the
charge back (once, even if the event is delivered again); a failure that was theirs
(not enough photos, not enough credits, a cancel after FAL got the job) does not; a
generation whose every picture was withheld as NSFW is refunded; a free job refunds nothing.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore

from contracts import (
    FailureReason,
    FalPriority,
    GenerationFailed,
    GenerationRequested,
    TrainingCancelled,
    TrainingFailed,
    TrainingRequested,
    encode,
    new_event_id,
    utcnow,
)
from contracts.base import Event
from contracts.jetstream import BOT_GENERATION, BOT_TRAINING
from sandbox.telegram import TelegramEmulator
from services.bot.app.pricing import Pricing
from services.bot.app.texts import Texts, Translator
from services.bot.training.callbacks import TrainingCb
from services.kit import credits
from tests.botkit import (
    BotUnderTest,
    bot_message,
    consumed,
    content,
    current,
    events_of,
    eventually,
    forge_press,
    has_button,
    open_generation_settings,
    press,
    publish,
)
from tests.integration import generation_harness as harness
from tests.integration.generation_harness import complete, seed_avatar, seed_user

images_store = harness.images_store  # the harness's fixture, used by name

TRAINING_PRICE = 50
PER_IMAGE = 5
EN = Translator(Texts.load(), "en")
TRAINING_REQUESTED = "aisha.avatar.training_requested"
GENERATION_REQUESTED = "aisha.generation.requested"


def shown(key: str, **params: object) -> str:
    """A locale text as the chat shows it (HTML tags parsed away)."""
    return re.sub(r"<[^>]+>", "", EN.plain(key, **params))


TRAINING_REQUESTED = "aisha.avatar.training_requested"
GENERATION_REQUESTED = "aisha.generation.requested"


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    """Priced jobs (botkit's default makes them free); no trial, so balances are exact."""
    return {"pricing": Pricing(training=TRAINING_PRICE, per_image=PER_IMAGE, trial=0)}


# --- playing the trainer and the status service -----------------------------------------------


async def post(pool: asyncpg.Pool, uid: int, kind: credits.Kind, amount: int, key: str) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await credits.post(conn, user_id=uid, kind=kind, amount=amount, key=key)


async def grant(pool: asyncpg.Pool, uid: int, amount: int) -> None:
    await post(pool, uid, credits.Kind.ADMIN_GRANT, amount, f"test_grant:{uuid.uuid4()}")


async def charge_training(pool: asyncpg.Pool, uid: int, avatar_id: str, attempt: int = 1) -> str:
    """What the trainer posts when it reserves the attempt's FAL job; returns the key."""
    key = credits.training_charge_key(avatar_id, attempt)
    await post(pool, uid, credits.Kind.TRAINING_CHARGE, -TRAINING_PRICE, key)
    return key


async def charge_generation(pool: asyncpg.Pool, uid: int, generation_id: str, amount: int) -> str:
    key = credits.generation_charge_key(generation_id)
    await post(pool, uid, credits.Kind.GENERATION_CHARGE, -amount, key)
    return key


async def refunds(pool: asyncpg.Pool, uid: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT idempotency_key, amount, reason, balance_after FROM credit_entries "
        "WHERE user_id = $1 AND kind = 'refund' ORDER BY seq",
        uid,
    )
    return rows


async def balance(pool: asyncpg.Pool, uid: int) -> int:
    return await credits.balance(pool, uid)


async def seed_training(pool: asyncpg.Pool, uid: int, name: str, status: str = "training") -> str:
    """An avatar of a user whose row exists: attempt 1 in training (or 0 and `ready`)."""
    attempt = 1 if status == "training" else 0
    avatar_id = await pool.fetchval(
        "INSERT INTO avatars (user_id, name, gender, trigger_word, status, photo_count, "
        "training_attempt) VALUES ($1, $2, 'female', 'ohwxtest', $3, 10, $4) RETURNING id",
        uid, name, status, attempt,
    )  # fmt: skip
    return str(avatar_id)


async def seed_generation(pool: asyncpg.Pool, uid: int, num_images: int = 2) -> str:
    generation_id = await pool.fetchval(
        "INSERT INTO generations (user_id, prompt, aspect_ratio, num_images, seed, status) "
        "VALUES ($1, 'a red fox in the snow', '1:1', $2, 7, 'submitted') RETURNING id",
        uid, num_images,
    )  # fmt: skip
    return str(generation_id)


async def new_user(emu: TelegramEmulator, pool: asyncpg.Pool, name: str) -> int:
    uid = int((await emu.create_user(name, language_code="en"))["id"])
    await seed_user(pool, uid)
    return uid


def training_failed(avatar_id: str, uid: int, reason: FailureReason) -> TrainingFailed:
    return TrainingFailed(
        event_id=new_event_id(), occurred_at=utcnow(), avatar_id=avatar_id, user_id=uid,
        attempt=1, reason=reason, retryable=True, request_id="req-t",
    )  # fmt: skip


def generation_failed(generation_id: str, uid: int, reason: FailureReason) -> GenerationFailed:
    return GenerationFailed(
        event_id=new_event_id(), occurred_at=utcnow(), generation_id=generation_id, user_id=uid,
        reason=reason,
    )  # fmt: skip


async def redeliver(js: JetStreamContext, event: Event) -> int:
    """The same event (same event_id) as a new stream message, as if its producer published
    it again after JetStream's duplicate window; returns its stream sequence."""
    ack = await js.publish(event.subject, encode(event), headers={"Nats-Msg-Id": new_event_id()})
    return int(ack.seq)


async def generation_requests(js: JetStreamContext, uid: int, since: datetime) -> list[Any]:
    """This user's `GenerationRequested` published since `since` (the emulator of another
    test may have handed out the same user id; the streams outlive a test)."""
    found = await events_of(js, GENERATION_REQUESTED, GenerationRequested, user_id=uid)
    return [e for e in found if e.occurred_at >= since]


async def avatar_status(pool: asyncpg.Pool, avatar_id: str) -> str:
    status: str = await pool.fetchval(
        "SELECT status::text FROM avatars WHERE id = $1", uuid.UUID(avatar_id)
    )
    return status


async def generation_status(pool: asyncpg.Pool, generation_id: str) -> str:
    status: str = await pool.fetchval(
        "SELECT status::text FROM generations WHERE id = $1", uuid.UUID(generation_id)
    )
    return status


async def settled(check: Any, *args: Any, want: str) -> None:
    """Wait for a status the end event's transaction commits (with its refund, if any)."""

    async def reached() -> bool:
        return bool(await check(*args) == want)

    await eventually(reached)


# --- training -----------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [FailureReason.FAL_ERROR, FailureReason.TIMEOUT])
async def test_a_training_failure_that_is_not_the_users_refunds_once(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool,
    reason: FailureReason,
) -> None:  # fmt: skip
    uid = await new_user(emu, admin_pool, "Anna")
    await grant(admin_pool, uid, 80)
    avatar_id = await seed_training(admin_pool, uid, "Anna")
    key = await charge_training(admin_pool, uid, avatar_id)
    assert await balance(admin_pool, uid) == 30

    event = training_failed(avatar_id, uid, reason)
    await publish(js, event)
    note = shown("credits.refunded", credits=TRAINING_PRICE, balance=80)
    failed = await bot_message(emu, uid, text=shown(f"failure.{reason.value}"))
    assert note in content(failed)
    assert has_button(failed, "training:retry")
    await settled(avatar_status, admin_pool, avatar_id, want="error")
    [refund] = await refunds(admin_pool, uid)
    assert refund["idempotency_key"] == f"refund:{key}"
    assert (refund["amount"], refund["reason"], refund["balance_after"]) == (
        TRAINING_PRICE, reason.value, 80,
    )  # fmt: skip
    assert await balance(admin_pool, uid) == 80

    # the same event once more (a new stream message, the same event_id): nothing happens
    count = len(await emu.bot_messages(uid))
    await consumed(js, BOT_TRAINING, await redeliver(js, event))
    assert len(await refunds(admin_pool, uid)) == 1
    assert await balance(admin_pool, uid) == 80
    assert len(await emu.bot_messages(uid)) == count


async def test_the_refund_finds_the_charge_however_the_event_spells_the_avatar_id(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool
) -> None:
    """The bot accepts any spelling of a UUID for the avatar; the charge's key is the
    canonical one the bot put in `TrainingRequested`: the refund must use that too."""
    uid = await new_user(emu, admin_pool, "Iris")
    await grant(admin_pool, uid, 50)
    avatar_id = await seed_training(admin_pool, uid, "Iris")
    key = await charge_training(admin_pool, uid, avatar_id)
    await publish(js, training_failed(avatar_id.upper(), uid, FailureReason.FAL_ERROR))
    await bot_message(emu, uid, text=shown("failure.fal_error"))
    await settled(avatar_status, admin_pool, avatar_id, want="error")
    assert [r["idempotency_key"] for r in await refunds(admin_pool, uid)] == [f"refund:{key}"]
    assert await balance(admin_pool, uid) == 50


@pytest.mark.parametrize(
    "reason", [FailureReason.NOT_ENOUGH_PHOTOS, FailureReason.INSUFFICIENT_CREDITS]
)
async def test_a_training_failure_that_is_the_users_refunds_nothing(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool,
    reason: FailureReason,
) -> None:  # fmt: skip
    """A charge exists on purpose (for insufficient_credits the trainer would not have made
    one): the reason alone must keep the credits where they are."""
    uid = await new_user(emu, admin_pool, "Bella")
    await grant(admin_pool, uid, 60)
    avatar_id = await seed_training(admin_pool, uid, "Bella")
    await charge_training(admin_pool, uid, avatar_id)

    await publish(js, training_failed(avatar_id, uid, reason))
    failed = await bot_message(emu, uid, text=shown(f"failure.{reason.value}"))
    await settled(avatar_status, admin_pool, avatar_id, want="error")
    assert "credits are back" not in content(failed)
    assert await refunds(admin_pool, uid) == []
    assert await balance(admin_pool, uid) == 10


async def test_a_cancel_before_fal_got_the_job_refunds_one_after_does_not(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool
) -> None:
    uid = await new_user(emu, admin_pool, "Carla")
    await grant(admin_pool, uid, 100)
    early = await seed_training(admin_pool, uid, "Early")
    late = await seed_training(admin_pool, uid, "Late")
    early_key = await charge_training(admin_pool, uid, early)
    await charge_training(admin_pool, uid, late)
    assert await balance(admin_pool, uid) == 0

    for avatar_id, request_id in ((early, None), (late, "req-at-fal")):
        await publish(js, TrainingCancelled(
            event_id=new_event_id(), occurred_at=utcnow(), avatar_id=avatar_id, user_id=uid,
            attempt=1, request_id=request_id,
        ))  # fmt: skip
    cancelled_early = await bot_message(emu, uid, text=shown("progress.cancelled", name="Early"))
    cancelled_late = await bot_message(emu, uid, text=shown("progress.cancelled", name="Late"))
    await settled(avatar_status, admin_pool, early, want="cancelled")
    await settled(avatar_status, admin_pool, late, want="cancelled")
    note = shown("credits.refunded", credits=TRAINING_PRICE, balance=TRAINING_PRICE)
    assert note in content(cancelled_early)
    assert "credits are back" not in content(cancelled_late)
    [refund] = await refunds(admin_pool, uid)
    assert (refund["idempotency_key"], refund["amount"], refund["reason"]) == (
        f"refund:{early_key}", TRAINING_PRICE, "cancelled_before_submit",
    )  # fmt: skip
    assert await balance(admin_pool, uid) == TRAINING_PRICE


# --- generation ---------------------------------------------------------------------------------


async def test_a_failed_generation_is_refunded_an_unpaid_one_is_not(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool
) -> None:
    uid = (await emu.create_user("Dina"))["id"]
    await seed_avatar(admin_pool, uid, "Dina")
    await grant(admin_pool, uid, 25)
    settings = await open_generation_settings(emu, uid)
    await press(emu, uid, settings, "gen:go")
    gid = await eventually(
        lambda: admin_pool.fetchval("SELECT id::text FROM generations WHERE user_id = $1", uid)
    )
    [request] = await eventually(
        lambda: events_of(js, GENERATION_REQUESTED, GenerationRequested, generation_id=gid)
    )
    assert request.credits == 2 * PER_IMAGE  # the quote the trainer charges
    key = await charge_generation(admin_pool, uid, gid, request.credits)
    assert await balance(admin_pool, uid) == 15

    event = generation_failed(gid, uid, FailureReason.FAL_ERROR)
    await publish(js, event)
    failed = await bot_message(emu, uid, text=shown("generate.failure.fal_error"))
    assert shown("credits.refunded", credits=10, balance=25) in content(failed)
    [refund] = await refunds(admin_pool, uid)
    assert (refund["idempotency_key"], refund["amount"], refund["reason"]) == (
        f"refund:{key}", 10, "fal_error",
    )  # fmt: skip
    assert await balance(admin_pool, uid) == 25
    await consumed(js, BOT_GENERATION, await redeliver(js, event))
    assert len(await refunds(admin_pool, uid)) == 1
    assert await balance(admin_pool, uid) == 25

    # the trainer could not charge: "not enough credits", and nothing comes back (a charge
    # is there on purpose, so only the reason keeps it)
    unpaid = await seed_generation(admin_pool, uid)
    await charge_generation(admin_pool, uid, unpaid, 10)
    await publish(js, generation_failed(unpaid, uid, FailureReason.INSUFFICIENT_CREDITS))
    refused = await bot_message(emu, uid, text=shown("generate.failure.insufficient_credits"))
    assert "credits are back" not in content(refused)
    assert await generation_status(admin_pool, unpaid) == "failed"
    assert len(await refunds(admin_pool, uid)) == 1
    assert await balance(admin_pool, uid) == 15


async def test_all_pictures_withheld_is_refunded_one_withheld_is_not(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool,
    images_store: ObjectStore,
) -> None:  # fmt: skip
    uid = await new_user(emu, admin_pool, "Eva")
    await grant(admin_pool, uid, 40)
    withheld = await seed_generation(admin_pool, uid, 2)
    mixed = await seed_generation(admin_pool, uid, 3)
    key = await charge_generation(admin_pool, uid, withheld, 10)
    await charge_generation(admin_pool, uid, mixed, 15)
    assert await balance(admin_pool, uid) == 15

    await complete(js, admin_pool, images_store, withheld, [(1, 1, 1), (2, 2, 2)], nsfw=(0, 1))
    note = shown("credits.refunded_nsfw", credits=10)
    nothing = await bot_message(emu, uid, text=note)
    assert shown("generate.nothing_to_show") in content(nothing)
    await settled(generation_status, admin_pool, withheld, want="completed")
    [refund] = await refunds(admin_pool, uid)
    assert (refund["idempotency_key"], refund["amount"], refund["reason"]) == (
        f"refund:{key}", 10, "nsfw",
    )  # fmt: skip
    assert await balance(admin_pool, uid) == 25

    colors = [(10, 0, 0), (0, 10, 0), (0, 0, 10)]
    await complete(js, admin_pool, images_store, mixed, colors, nsfw=(1,))
    done = await bot_message(emu, uid, text=shown("generate.done", count=2))
    await settled(generation_status, admin_pool, mixed, want="completed")
    assert "credits" not in content(done)
    assert len(await refunds(admin_pool, uid)) == 1
    assert await balance(admin_pool, uid) == 25


async def test_a_free_job_that_fails_refunds_nothing(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool,
    images_store: ObjectStore,
) -> None:  # fmt: skip
    """No charge entry (a free job, or one the trainer never charged): no entry, no text."""
    uid = await new_user(emu, admin_pool, "Fay")
    await grant(admin_pool, uid, 5)
    avatar_id = await seed_training(admin_pool, uid, "Fay")
    failed_gen, withheld = (
        await seed_generation(admin_pool, uid),
        await seed_generation(admin_pool, uid),
    )

    await publish(js, training_failed(avatar_id, uid, FailureReason.FAL_ERROR))
    await publish(js, generation_failed(failed_gen, uid, FailureReason.FAL_ERROR))
    await complete(js, admin_pool, images_store, withheld, [(5, 5, 5), (6, 6, 6)], nsfw=(0, 1))
    ends = [
        await bot_message(emu, uid, text=shown("failure.fal_error")),
        await bot_message(emu, uid, text=shown("generate.failure.fal_error")),
        await bot_message(emu, uid, text=shown("generate.nothing_to_show")),
    ]
    await settled(avatar_status, admin_pool, avatar_id, want="error")
    await settled(generation_status, admin_pool, withheld, want="completed")
    assert all("credits" not in content(message) for message in ends)
    assert await refunds(admin_pool, uid) == []
    assert await balance(admin_pool, uid) == 5


# --- the bot's balance check before a job -------------------------------------------------------


async def test_starting_a_training_without_enough_credits_requests_nothing(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool
) -> None:
    uid = await new_user(emu, admin_pool, "Gala")
    await grant(admin_pool, uid, 20)
    avatar_id = await seed_training(admin_pool, uid, "Gala", status="ready")
    await emu.send_command(uid, "start")
    menu = await bot_message(emu, uid, button="menu:create")
    start = TrainingCb.go(uuid.UUID(avatar_id), FalPriority.QUALITY).pack()

    forge_press(emu, uid, menu["message_id"], start)
    refused = await bot_message(emu, uid, text=shown("credits.not_enough", price=50, balance=20))
    assert has_button(refused, "shop:open")
    row = await admin_pool.fetchrow(
        "SELECT status::text, training_attempt, progress_message_id FROM avatars WHERE id = $1",
        uuid.UUID(avatar_id),
    )
    assert tuple(row) == ("ready", 0, None)
    assert await admin_pool.fetchval("SELECT count(*) FROM outbox") == 0
    assert await events_of(js, TRAINING_REQUESTED, TrainingRequested, avatar_id=avatar_id) == []
    assert await balance(admin_pool, uid) == 20

    # topped up, the same press starts it, with the quote in the request
    await grant(admin_pool, uid, 30)
    forge_press(emu, uid, menu["message_id"], start)
    [request] = await eventually(
        lambda: events_of(js, TRAINING_REQUESTED, TrainingRequested, avatar_id=avatar_id)
    )
    assert (request.attempt, request.credits) == (1, TRAINING_PRICE)
    assert await avatar_status(admin_pool, avatar_id) == "training"


async def test_confirming_a_generation_without_enough_credits_requests_nothing(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool
) -> None:
    since = utcnow()
    uid = (await emu.create_user("Hana"))["id"]
    avatar_id = await seed_avatar(admin_pool, uid, "Hana")
    await grant(admin_pool, uid, 9)
    settings = await open_generation_settings(emu, uid)
    await press(emu, uid, settings, "gen:go")
    refused = await bot_message(emu, uid, text=shown("credits.not_enough", price=10, balance=9))
    assert has_button(refused, "shop:open")
    assert await admin_pool.fetchval("SELECT count(*) FROM generations") == 0
    assert await admin_pool.fetchval("SELECT count(*) FROM outbox") == 0
    assert await generation_requests(js, uid, since) == []
    assert await admin_pool.fetchval(
        "SELECT generation_count FROM avatars WHERE id = $1", uuid.UUID(avatar_id)
    ) == 0  # fmt: skip
    unchanged = await current(emu, uid, settings["message_id"])
    assert unchanged is not None
    assert unchanged["text"] == settings["text"]  # the screen stays, to press again

    await grant(admin_pool, uid, 1)
    await press(emu, uid, settings, "gen:go")
    [request] = await eventually(lambda: generation_requests(js, uid, since))
    assert request.credits == 10
    assert await balance(admin_pool, uid) == 10  # the bot only checks; the trainer charges
