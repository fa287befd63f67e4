"""The trainer's own line for training slots, on a migrated PostgreSQL with the trainer's
login: admission without overtaking, places told and re-told, a cancel leaves the line,
and a freed slot releases the oldest waiting request (republished through the outbox)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from contracts import (
    TrainingCancelRequested,
    TrainingRequested,
    derived_event_id,
    utcnow,
)
from services.kit.config import Env
from services.kit.db import create_pool
from services.trainer import training_ledger
from services.trainer.config import TrainerConfig
from services.trainer.metrics import TrainerMetrics
from services.trainer.presets import plan_training
from services.trainer.training_submission import TrainingService, idempotency_key
from services.trainer.waiting_line import WaitingLine
from tests.faults.test_orphans import avatar

SLOTS = 1


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    made = await create_pool(db_url, "aisha_trainer")
    yield made
    await made.close()


async def reserve(pool: asyncpg.Pool, event: TrainingRequested) -> training_ledger.Reservation:
    plan = plan_training(event.training_type, event.priority, event.trigger_word, 1)
    key = idempotency_key(event.avatar_id, 1)
    return await training_ledger.reserve(pool, key, event, plan, SLOTS)


async def outbox(admin: asyncpg.Pool, subject: str, avatar_id: str) -> list[dict[str, object]]:
    rows = await admin.fetch(
        "SELECT payload FROM outbox WHERE subject = $1 ORDER BY created_at, id", subject
    )
    events = [json.loads(bytes(r["payload"])) for r in rows]
    return [e for e in events if e["avatar_id"] == avatar_id]


async def places(admin: asyncpg.Pool, event: TrainingRequested) -> list[object]:
    """The places in the line the user was told, in order."""
    told = await outbox(admin, "aisha.training.waiting", event.avatar_id)
    return [e["ahead"] for e in told]


async def test_the_line_admits_tells_places_and_releases_the_oldest(
    pool: asyncpg.Pool, admin_pool: asyncpg.Pool, db_url: str
) -> None:
    first, second, third = [await avatar(db_url) for _ in range(3)]
    running = await reserve(pool, first)
    assert running.lease is not None
    assert running.ahead is None
    assert (await reserve(pool, second)).ahead == 0
    assert (await reserve(pool, third)).ahead == 1
    again = await reserve(pool, third)  # a redelivery of a waiting request
    assert again.lease is None
    assert again.ahead is None  # not a second place in the line
    assert await places(admin_pool, third) == [1]

    line = WaitingLine(pool, SLOTS)
    assert await line.release_once() == 0  # the first one holds the only slot

    config = TrainerConfig.from_env(
        Env(
            {
                "FAL_KEY": "id:secret",
                "PUBLIC_BASE_URL": "http://127.0.0.1:9",
                "DATABASE_URL": db_url,
            }
        )
    )
    service = TrainingService(pool, None, None, config, TrainerMetrics())  # type: ignore[arg-type]
    cancel = TrainingCancelRequested(
        event_id=derived_event_id("cancel", second.avatar_id),
        occurred_at=utcnow(),
        avatar_id=second.avatar_id,
        user_id=second.user_id,
        attempt=1,
    )
    await service.on_cancel(cancel, None)  # type: ignore[arg-type]  # waiting: FAL not asked
    assert await line.release_once() == 0
    assert await places(admin_pool, third) == [1, 0]  # moved up: the one before it left
    assert (
        await admin_pool.fetchval(
            "SELECT request FROM fal_submissions WHERE idempotency_key = $1",
            idempotency_key(second.avatar_id, 1),
        )
        is None
    )  # a cancelled request's copy is not kept

    await admin_pool.execute(
        "UPDATE fal_submissions SET state = 'failed' WHERE idempotency_key = $1",
        idempotency_key(first.avatar_id, 1),
    )
    assert await line.release_once() == 1
    state = await admin_pool.fetchrow(
        "SELECT state, request FROM fal_submissions WHERE idempotency_key = $1",
        idempotency_key(third.avatar_id, 1),
    )
    assert state["state"] == "preparing"
    assert state["request"] is None
    [republished] = await outbox(admin_pool, "aisha.avatar.training_requested", third.avatar_id)
    assert republished["event_id"] != third.event_id  # not dropped as a duplicate
    assert republished["trigger_word"] == third.trigger_word
    taken = await reserve(pool, third)  # the republished request takes the released row
    assert taken.lease is not None
    assert taken.ahead is None
    assert await outbox(admin_pool, "aisha.avatar.training_requested", second.avatar_id) == []


async def test_a_dead_deliverys_preparing_row_does_not_hold_a_slot_for_good(
    pool: asyncpg.Pool, admin_pool: asyncpg.Pool, db_url: str
) -> None:
    first, second = [await avatar(db_url) for _ in range(2)]
    assert (await reserve(pool, first)).lease is not None
    await admin_pool.execute(  # its delivery died long ago and nothing renewed the lease
        "UPDATE fal_submissions SET updated_at = now() - interval '11 minutes'"
        " WHERE idempotency_key = $1",
        idempotency_key(first.avatar_id, 1),
    )
    admitted = await reserve(pool, second)
    assert admitted.ahead is None
    assert admitted.lease is not None
