"""Training events in the bot: every event is claimed once, and only one of the avatar's
current training moves it (`services/bot/training/events.py`, one statement before the final edit).

The first test runs the whole bot (aiogram on the Telegram emulator, real NATS and
PostgreSQL) and plays the status service; the others drive `TrainingEvents` straight on the
bot's database role with a recording sender, to hold a final edit while it is in flight.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
from nats.js import JetStreamContext

from contracts import (
    FailureReason,
    TrainingCompleted,
    TrainingFailed,
    TrainingProgress,
    TrainingWaiting,
    derived_event_id,
    encode,
    new_event_id,
    utcnow,
)
from contracts.base import Event
from contracts.jetstream import BOT_TRAINING
from sandbox.telegram import TelegramEmulator
from services.bot.app.metrics import BotMetrics
from services.bot.app.pacing import ChatPositions
from services.bot.app.texts import Texts
from services.bot.training.events import CONSUMER, TrainingEvents
from services.kit.db import create_pool
from services.kit.schema import BOT
from tests.botkit import BotUnderTest, bot_message, consumed, eventually, publish

# --- seeding and events -------------------------------------------------------------------------


async def seed_training(
    pool: asyncpg.Pool, uid: int, attempt: int, progress_message: int | None = None
) -> str:
    """An English user's avatar in training at `attempt`, with its progress message (in the
    user's chat) if given."""
    await pool.execute(
        "INSERT INTO users (id, first_name, language) VALUES ($1, 'U', 'en') "
        "ON CONFLICT DO NOTHING",
        uid,
    )
    avatar_id = await pool.fetchval(
        "INSERT INTO avatars (user_id, name, gender, trigger_word, status, photo_count, "
        "training_attempt, progress_chat_id, progress_message_id) "
        "VALUES ($1, 'Vera', 'female', 'ohwxtest', 'training', 10, $2, $3, $4) RETURNING id",
        uid, attempt, None if progress_message is None else uid, progress_message,
    )  # fmt: skip
    return str(avatar_id)


def completed(avatar_id: str, uid: int, attempt: int) -> TrainingCompleted:
    return TrainingCompleted(
        event_id=new_event_id(), occurred_at=utcnow(), avatar_id=avatar_id, user_id=uid,
        attempt=attempt, request_id="req-1", lora_url="https://fal.example/lora.safetensors",
    )  # fmt: skip


def failed(avatar_id: str, uid: int, attempt: int) -> TrainingFailed:
    return TrainingFailed(
        event_id=new_event_id(), occurred_at=utcnow(), avatar_id=avatar_id, user_id=uid,
        attempt=attempt, reason=FailureReason.FAL_ERROR, retryable=True, request_id="req-1",
    )  # fmt: skip


def progressed(avatar_id: str, uid: int, attempt: int) -> TrainingProgress:
    return TrainingProgress(
        event_id=new_event_id(), occurred_at=utcnow(), avatar_id=avatar_id, user_id=uid,
        attempt=attempt, request_id="req-1", fal_status="IN_PROGRESS", progress=40,
        eta_seconds=300,
    )  # fmt: skip


async def claims(pool: asyncpg.Pool, *events: Event) -> int:
    """How many of `events` the bot's training consumer has claimed."""
    count: int = await pool.fetchval(
        "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = ANY($2)",
        CONSUMER,
        [uuid.UUID(e.event_id) for e in events],
    )
    return count


async def status_of(pool: asyncpg.Pool, avatar_id: str) -> tuple[str, int]:
    row = await pool.fetchrow(
        "SELECT status::text, training_attempt FROM avatars WHERE id = $1", uuid.UUID(avatar_id)
    )
    assert row is not None
    return row["status"], row["training_attempt"]


async def sent(js: JetStreamContext, event: Event, *, again: bool = False) -> None:
    """Publish `event` and wait until the bot's training consumer has acknowledged it;
    `again`: as a new stream message with the same event_id (a producer's late retry)."""

    await consumed(js, BOT_TRAINING, 0)
    msg_id = new_event_id() if again else event.event_id
    ack = await js.publish(event.subject, encode(event), headers={"Nats-Msg-Id": msg_id})
    await consumed(js, BOT_TRAINING, ack.seq)


# --- through the running bot --------------------------------------------------------------------


async def test_unknown_stale_and_redelivered_events_are_claimed_and_change_nothing(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool
) -> None:
    uid = int((await emu.create_user("Vera", language_code="en"))["id"])
    avatar_id = await seed_training(admin_pool, uid, attempt=2)

    # an avatar nobody knows: claimed (a redelivery finds it handled), nothing shown
    nobody = str(uuid.uuid4())
    unknown = [completed(nobody, uid, 2), progressed(nobody, uid, 2)]
    for event in unknown:
        await sent(js, event)
    assert await claims(admin_pool, *unknown) == 2

    # an older attempt's end and progress: claimed, the avatar stays in attempt 2's training
    older = [completed(avatar_id, uid, 1), failed(avatar_id, uid, 1), progressed(avatar_id, uid, 1)]
    for event in older:
        await sent(js, event)
    assert await claims(admin_pool, *older) == 3
    assert await status_of(admin_pool, avatar_id) == ("training", 2)
    assert await emu.bot_messages(uid) == []

    # the current attempt's end: applied and shown once, even when delivered again
    done = completed(avatar_id, uid, 2)
    await publish(js, done)
    await bot_message(emu, uid, text="is ready")
    await eventually(lambda: claims(admin_pool, done))
    assert await status_of(admin_pool, avatar_id) == ("completed", 2)
    await sent(js, done, again=True)
    assert await claims(admin_pool, done) == 1
    assert len(await emu.bot_messages(uid)) == 1

    # an end or progress after the end: claimed and ignored
    late = [failed(avatar_id, uid, 2), progressed(avatar_id, uid, 2)]
    for event in late:
        await sent(js, event)
    assert await claims(admin_pool, *late) == 2
    assert await status_of(admin_pool, avatar_id) == ("completed", 2)
    [message] = await emu.bot_messages(uid)
    assert "is ready" in message["text"]


# --- TrainingEvents on the bot's role, with a sender the test holds -----------------------------


class HeldSender:
    """Records edits and sends; a send (an outcome is a new message) waits for `release`
    (Telegram being slow)."""

    def __init__(self) -> None:
        self.edits: list[tuple[int, int, str]] = []
        self.sends: list[tuple[int, str]] = []
        self.deletes: list[tuple[int, int]] = []
        self.sending = asyncio.Event()
        self.release = asyncio.Event()
        self.positions = ChatPositions()

    async def edit(self, chat_id: int, message_id: int, text: str, markup: Any = None) -> bool:
        self.edits.append((chat_id, message_id, text))
        return True

    def enqueue_edit(
        self, chat_id: int, message_id: int, text: str, markup: Any = None
    ) -> asyncio.Future[Any]:
        self.edits.append((chat_id, message_id, text))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(True)
        return done

    async def delete(self, chat_id: int, message_id: int) -> bool:
        self.deletes.append((chat_id, message_id))
        return True

    async def send(
        self, chat_id: int, text: str, markup: Any = None, *, silent: bool = False
    ) -> SimpleNamespace:
        self.sends.append((chat_id, text))
        self.sending.set()
        await self.release.wait()
        return SimpleNamespace(chat=SimpleNamespace(id=chat_id), message_id=1000 + len(self.sends))


@pytest.fixture
async def bot_pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_url, BOT, max_size=4)
    yield pool
    await pool.close()


def handlers(pool: asyncpg.Pool, sender: HeldSender) -> tuple[TrainingEvents, BotMetrics]:
    metrics = BotMetrics()
    return TrainingEvents(pool, sender, Texts.load(), metrics), metrics  # type: ignore[arg-type]


def finished(metrics: BotMetrics, outcome: str) -> tuple[float | None, float | None]:
    """(trainings finished, end-to-end observations) of a portrait training's `outcome`."""
    labels = {"training_type": "portrait", "outcome": outcome}
    return (
        metrics.registry.get_sample_value("aisha_bot_trainings_finished_total", labels),
        metrics.registry.get_sample_value("aisha_bot_training_end_to_end_seconds_count", labels),
    )


async def test_a_final_event_holds_the_avatar_until_its_edit_is_done(
    bot_pool: asyncpg.Pool, admin_pool: asyncpg.Pool
) -> None:
    """Two bot processes (two `TrainingEvents`, each with its own in-process locks) get the
    completion and a failure of the same attempt: the first holds the avatar's row from
    before its outcome message to its commit, so the second waits and then finds it stale.
    The outcome is a new message; the progress message is deleted."""
    uid = 700_000_001
    avatar_id = await seed_training(admin_pool, uid, attempt=1, progress_message=42)
    requested = uuid.UUID(derived_event_id("training_requested", uuid.UUID(avatar_id), 1))
    await admin_pool.execute(
        "INSERT INTO outbox (id, producer, subject, payload, created_at) "
        "VALUES ($1, 'bot', 'aisha.avatar.training_requested', '\\x00', now() - interval '1 h')",
        requested,
    )
    sender = HeldSender()
    first, first_metrics = handlers(bot_pool, sender)
    second, second_metrics = handlers(bot_pool, sender)
    done, lost = completed(avatar_id, uid, 1), failed(avatar_id, uid, 1)

    completing = asyncio.create_task(first.on_completed(done, None))  # type: ignore[arg-type]
    await asyncio.wait_for(sender.sending.wait(), 10)
    # the outcome is in flight inside the transaction: nothing is committed yet
    assert await status_of(admin_pool, avatar_id) == ("training", 1)
    assert await claims(admin_pool, done) == 0
    failing = asyncio.create_task(second.on_failed(lost, None))  # type: ignore[arg-type]
    await asyncio.sleep(0.5)
    assert not failing.done()  # waits for the avatar's row
    assert len(sender.sends) == 1
    assert sender.edits == []

    sender.release.set()
    await asyncio.wait_for(asyncio.gather(completing, failing), 10)
    assert await status_of(admin_pool, avatar_id) == ("completed", 1)
    assert await claims(admin_pool, done, lost) == 2
    [(chat, text)] = sender.sends
    assert chat == uid
    assert "is ready" in text
    assert sender.edits == []
    assert sender.deletes == [(uid, 42)]  # the progress message closed
    assert (
        await admin_pool.fetchval(
            "SELECT progress_message_id FROM avatars WHERE id = $1", uuid.UUID(avatar_id)
        )
        == 1001
    ), "the outcome is the avatar's live message now (Retry is pressed there)"
    assert finished(first_metrics, "completed") == (1, 1)
    total = first_metrics.registry.get_sample_value(
        "aisha_bot_training_end_to_end_seconds_sum",
        {"training_type": "portrait", "outcome": "completed"},
    )
    assert total is not None
    assert total >= 3600  # timed from the `TrainingRequested` outbox row's created_at
    assert finished(second_metrics, "failed") == (None, None)

    # a redelivery of either changes nothing and tells nothing
    await first.on_completed(done, None)  # type: ignore[arg-type]
    await second.on_failed(lost, None)  # type: ignore[arg-type]
    assert len(sender.deletes) == 1
    assert len(sender.sends) == 1
    assert finished(first_metrics, "completed") == (1, 1)


async def test_progress_and_an_untimed_end(
    bot_pool: asyncpg.Pool, admin_pool: asyncpg.Pool
) -> None:
    """Progress is shown on the progress message; an end whose `TrainingRequested` row is
    gone (older than the outbox keeps) is counted but not timed."""
    uid = 700_000_002
    avatar_id = await seed_training(admin_pool, uid, attempt=3, progress_message=7)
    sender = HeldSender()
    sender.release.set()
    events, metrics = handlers(bot_pool, sender)

    step = progressed(avatar_id, uid, 3)
    await events.on_progress(step, None)  # type: ignore[arg-type]
    await events.on_progress(step, None)  # type: ignore[arg-type]  # redelivered: nothing
    [(chat, message, text)] = sender.edits
    assert (chat, message) == (uid, 7)
    assert "40%" in text
    assert await claims(admin_pool, step) == 1
    assert await status_of(admin_pool, avatar_id) == ("training", 3)

    end = failed(avatar_id, uid, 3)
    await events.on_failed(end, None)  # type: ignore[arg-type]
    assert await status_of(admin_pool, avatar_id) == ("error", 3)
    assert "failed" in sender.sends[-1][1]
    assert len(sender.edits) == 1  # the progress edit only
    assert sender.deletes == [(uid, 7)]
    assert finished(metrics, "failed") == (1, None)


async def test_the_progress_message_tells_line_queue_estimate_and_logged_percent(
    bot_pool: asyncpg.Pool, admin_pool: asyncpg.Pool
) -> None:
    """Our own line ("N ahead of you"), FAL's queue, an estimate labelled as one (with the
    time left), and a percentage read from FAL's logs shown as it is."""
    uid = 700_000_003
    avatar_id = await seed_training(admin_pool, uid, attempt=1, progress_message=9)
    sender = HeldSender()
    sender.release.set()
    events, _ = handlers(bot_pool, sender)
    about = {"avatar_id": avatar_id, "user_id": uid, "attempt": 1}
    fal = {**about, "request_id": "req-9"}

    def at() -> dict[str, Any]:
        return {"event_id": new_event_id(), "occurred_at": utcnow()}

    await events.on_waiting(TrainingWaiting(**at(), **about, ahead=2), None)  # type: ignore[arg-type]
    await events.on_progress(
        TrainingProgress(**at(), **fal, fal_status="IN_QUEUE", progress=0, queue_position=3),
        None,  # type: ignore[arg-type]
    )
    estimate = TrainingProgress(
        **at(), **fal, fal_status="IN_PROGRESS", progress=40, eta_seconds=360, estimated=True
    )
    await events.on_progress(estimate, None)  # type: ignore[arg-type]
    logged = TrainingProgress(**at(), **fal, fal_status="IN_PROGRESS", progress=45)
    await events.on_progress(logged, None)  # type: ignore[arg-type]
    line, queue, guess, percent = (text for _, _, text in sender.edits)
    assert "waiting for a free training slot, 2 ahead of you" in line
    assert "in the training queue, 3 ahead" in queue
    assert "≈ 40% (estimate, ~6 min left)" in guess
    assert "45%" in percent
    assert "estimate" not in percent
