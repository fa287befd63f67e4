"""The ledger's crash states, one at a time, in process against real PostgreSQL and NATS.

The process-level scenarios (`test_crashpoints.py`) show the whole product recovering;
these pin each branch of the reconciliation: an orphan adopted from its stored webhook,
an orphan still waiting (nak), one given up after the window (the user told, retryable),
a `preparing` row taken over, a lease lost to another delivery, and the status side of
it — a keyed webhook for an unknown job kept, applied once adopted, expired after the TTL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import nats
import pytest
from nats.js.object_store import ObjectStore
from prometheus_client import CollectorRegistry

from contracts import FalPriority, TrainingRequested, TrainingType, derived_event_id, utcnow
from contracts.jetstream import TRAINER_REQUESTS
from services.kit.broker import provision
from services.kit.config import Env
from services.kit.consumer import Delivery
from services.kit.db import create_pool
from services.status.metrics import StatusMetrics
from services.status.signature import JwksVerifier
from services.status.training_tracking import Tracker
from services.status.webhooks import ORPHAN_TTL_SECONDS, WebhookReceiver
from services.trainer import ledger as shared_ledger
from services.trainer import training_ledger as ledger
from services.trainer.config import TrainerConfig
from services.trainer.fal_gateway import FalGateway
from services.trainer.metrics import TrainerMetrics
from services.trainer.presets import plan_training
from services.trainer.submission import TryLater
from services.trainer.training_submission import TrainingService, idempotency_key

pytestmark = pytest.mark.faults
#: Training slots for a direct `reserve`: enough that admission never makes a row wait.
SLOTS = 8
ENV = {
    "FAL_KEY": "sandbox-key-id:sandbox-key-secret",
    "PUBLIC_BASE_URL": "http://127.0.0.1:9",
    "TRAINER_RECONCILE_MINUTES": "30",
}


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[nats.js.JetStreamContext]:
    nc = await nats.connect(nats_url)
    context = nc.jetstream()
    await provision(context)
    yield context
    await nc.drain()


@pytest.fixture
async def trainer(db_url: str, js: nats.js.JetStreamContext) -> AsyncIterator[TrainingService]:
    config = TrainerConfig.from_env(Env({**ENV, "DATABASE_URL": db_url}))
    pool = await create_pool(db_url, "aisha_trainer")
    yield TrainingService(
        pool=pool,
        fal=FalGateway(config.fal_key),  # never called on these paths: nothing listens on it
        photos=await js.object_store("aisha_photos"),
        config=config,
        metrics=TrainerMetrics(),
    )
    await pool.close()


async def avatar(db_url: str) -> TrainingRequested:
    conn = await asyncpg.connect(db_url)
    try:
        uid = uuid.uuid4().int % 10**9
        await conn.execute("INSERT INTO users (id, first_name) VALUES ($1, 'O')", uid)
        avatar_id = await conn.fetchval(
            "INSERT INTO avatars (user_id, name, gender, training_type, trigger_word, status,"
            " training_attempt) VALUES ($1, 'O', 'male', 'style', 'tokO', 'training', 1)"
            " RETURNING id::text",
            uid,
        )
    finally:
        await conn.close()
    return TrainingRequested(
        event_id=derived_event_id("training_requested", avatar_id, 1),
        occurred_at=utcnow(),
        avatar_id=avatar_id,
        user_id=uid,
        attempt=1,
        training_type=TrainingType.STYLE,
        priority=FalPriority.SPEED,
        trigger_word="tokO",
        photo_count=10,
    )


async def store_photos(db_url: str, store: ObjectStore, event: TrainingRequested) -> None:
    """Ten accepted photos of the avatar, as the bot stores them."""
    from tests.faults.flows import photo

    for i in range(10):
        await store.put(f"{event.avatar_id}/{i}.jpg", photo(i))
        await sql(
            db_url,
            "INSERT INTO photos (avatar_id, user_id, object_name, sha256, status)"
            " VALUES ($1, $2, $3, $4, 'accepted')",
            uuid.UUID(event.avatar_id),
            event.user_id,
            f"{event.avatar_id}/{i}.jpg",
            f"h{i}",
        )


async def sql(db_url: str, query: str, *args: object) -> object:
    conn = await asyncpg.connect(db_url)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def submitting(db_url: str, event: TrainingRequested, age_minutes: float = 0) -> str:
    """The row a trainer leaves when it dies between the submit and its commit."""
    key = idempotency_key(event.avatar_id, event.attempt)
    await sql(
        db_url,
        "INSERT INTO fal_submissions (kind, subject_id, attempt, idempotency_key, endpoint,"
        " state, created_at) VALUES ('training', $1, 1, $2, 'fal-ai/flux-lora-fast-training',"
        " 'submitting', now() - make_interval(mins => $3))",
        uuid.UUID(event.avatar_id),
        key,
        float(age_minutes),
    )
    return key


async def webhook(db_url: str, request_id: str, key: str | None, age_hours: float = 0) -> int:
    body = {"request_id": request_id, "status": "OK", "payload": {}}
    value = await sql(
        db_url,
        "INSERT INTO fal_webhooks (request_id, fal_timestamp, body, idempotency_key, received_at)"
        " VALUES ($1, 1, $2::jsonb, $3, now() - make_interval(hours => $4)) RETURNING id",
        request_id,
        msgspec.json.encode(body).decode(),
        key,
        float(age_hours),
    )
    assert isinstance(value, int)
    return value


def sample(registry: CollectorRegistry, name: str, outcome: str) -> float | None:
    return registry.get_sample_value(name, {"outcome": outcome})


def delivery(number: int = 2) -> Delivery:
    return Delivery(number, TRAINER_REQUESTS.max_deliver)


async def test_orphan_is_adopted_from_its_stored_webhook(trainer, db_url) -> None:
    event = await avatar(db_url)
    key = await submitting(db_url, event)
    await webhook(db_url, "req-orphan-1", key)
    await trainer.on_requested(event, delivery())
    state = await sql(db_url, "SELECT state || ':' || request_id FROM fal_submissions")
    assert state == "submitted:req-orphan-1"
    row = await sql(
        db_url,
        "SELECT fal_request_id || '|' || webhook_url || '|' || steps FROM avatars WHERE id = $1",
        uuid.UUID(event.avatar_id),
    )
    steps = plan_training(event.training_type, event.priority, event.trigger_word, 1).steps
    assert row == f"req-orphan-1|http://127.0.0.1:9/fal/webhook?key={key}|{steps}"
    subjects = await sql(db_url, "SELECT string_agg(subject, ',') FROM outbox")
    assert subjects == "aisha.training.submitted"
    assert sample(trainer.metrics.registry, "aisha_trainer_orphans_total", "adopted") == 1


async def test_orphan_without_a_webhook_waits_then_is_given_up(trainer, db_url) -> None:
    event = await avatar(db_url)
    await submitting(db_url, event)
    with pytest.raises(TryLater):
        await trainer.on_requested(event, delivery())
    assert await sql(db_url, "SELECT count(*) FROM outbox") == 0
    await sql(db_url, "UPDATE fal_submissions SET created_at = now() - interval '31 minutes'")
    await trainer.on_requested(event, delivery(3))
    assert await sql(db_url, "SELECT state FROM fal_submissions") == "failed"
    payload = await sql(db_url, "SELECT convert_from(payload, 'UTF8') FROM outbox")
    assert isinstance(payload, str)
    failed = msgspec.json.decode(payload)
    assert (failed["reason"], failed["retryable"]) == ("internal", True)


async def test_a_webhook_for_a_job_someone_else_owns_is_never_adopted(trainer, db_url) -> None:
    other, event = await avatar(db_url), await avatar(db_url)
    await sql(
        db_url,
        "INSERT INTO fal_submissions (kind, subject_id, attempt, idempotency_key, endpoint,"
        " state, request_id) VALUES ('training', $1, 1, 'other', 'x', 'submitted', 'req-taken')",
        uuid.UUID(other.avatar_id),
    )
    key = await submitting(db_url, event)
    await webhook(db_url, "req-taken", key)  # a forged key on someone else's genuine webhook
    with pytest.raises(TryLater):
        await trainer.on_requested(event, delivery())
    state = await sql(db_url, "SELECT state FROM fal_submissions WHERE idempotency_key = $1", key)
    assert state == "submitting"


async def test_lease_moves_to_the_delivery_that_took_a_preparing_row_over(trainer, db_url) -> None:
    event = await avatar(db_url)
    key = idempotency_key(event.avatar_id, 1)
    plan = plan_training(event.training_type, event.priority, event.trigger_word, 1)
    first = (await ledger.reserve(trainer.pool, key, event, plan, SLOTS)).lease
    second = (await ledger.reserve(trainer.pool, key, event, plan, SLOTS)).lease  # the first "died"
    assert first is not None
    assert second is not None
    assert first != second
    assert await shared_ledger.begin_submit(trainer.pool, key, first) is None  # may not call FAL
    assert await shared_ledger.begin_submit(trainer.pool, key, second) is not None
    now = await ledger.reserve(trainer.pool, key, event, plan, SLOTS)
    assert now.lease is None  # `submitting`


@pytest.fixture
async def receiver(db_url: str, js) -> AsyncIterator[WebhookReceiver]:
    pool = await create_pool(db_url, "aisha_status")
    metrics = StatusMetrics()
    tracker = Tracker(pool, metrics)
    verifier = JwksVerifier("http://127.0.0.1:9/jwks", 300)
    yield WebhookReceiver(pool, verifier, tracker, metrics, 1 << 20)
    await verifier.close()
    await pool.close()


async def test_keyed_webhook_of_an_unknown_job_waits_for_adoption(receiver, db_url) -> None:
    event = await avatar(db_url)
    hook = await webhook(db_url, "req-late", "training:x:1")
    assert await receiver.apply(hook, "req-late", {"status": "OK"}) == "orphan_pending"
    assert await sql(db_url, "SELECT processed_at IS NULL FROM fal_webhooks") is True
    await sql(db_url, "UPDATE fal_webhooks SET received_at = now() - interval '1 minute'")
    assert await receiver.sweep() == 0  # still unknown: not re-read every cycle
    await sql(
        db_url,
        "UPDATE avatars SET fal_request_id = 'req-late', submitted_attempt = 1 WHERE id = $1",
        uuid.UUID(event.avatar_id),
    )
    assert await receiver.sweep() == 1
    assert await sql(db_url, "SELECT processed_at IS NOT NULL FROM fal_webhooks") is True


async def test_orphan_webhook_expires_and_keyless_unknown_is_dropped(receiver, db_url) -> None:
    expired = await webhook(db_url, "req-old", "training:y:1", ORPHAN_TTL_SECONDS / 3600 + 0.1)
    keyless = await webhook(db_url, "req-nokey", None, 1)
    assert await receiver.sweep() == 2
    registry = receiver.metrics.registry
    assert sample(registry, "aisha_status_webhooks_total", "orphan_expired") == 1
    assert sample(registry, "aisha_status_webhooks_total", "unknown") == 1
    done = await sql(
        db_url,
        "SELECT count(*) FROM fal_webhooks WHERE processed_at IS NOT NULL AND id IN ($1, $2)",
        expired,
        keyless,
    )
    assert done == 2


async def test_preparing_row_of_a_dead_delivery_is_taken_over_and_submitted_once(
    db_url, js, monkeypatch
) -> None:
    """The trainer died while uploading (FAL never called): the next delivery goes on."""
    from sandbox.fal import FalEmulator

    async with FalEmulator(training_seconds=60, queue_seconds=0) as fal:
        for name, value in fal.client_env().items():
            monkeypatch.setenv(name, value)
        config = TrainerConfig.from_env(Env({**ENV, "DATABASE_URL": db_url}))
        pool = await create_pool(db_url, "aisha_trainer")
        store = await js.object_store("aisha_photos")
        service = TrainingService(pool, FalGateway(fal.fal_key), store, config, TrainerMetrics())
        try:
            event = await avatar(db_url)
            await store_photos(db_url, store, event)
            key = idempotency_key(event.avatar_id, 1)
            plan = plan_training(event.training_type, event.priority, event.trigger_word, 1)
            assert (await ledger.reserve(pool, key, event, plan, SLOTS)).lease is not None  # died
            await service.on_requested(event, delivery())
        finally:
            await pool.close()
        assert await sql(db_url, "SELECT state FROM fal_submissions") == "submitted"
        assert [j.webhook_url for j in fal.jobs] == [f"{config.webhook_url}?key={key}"]


async def test_unanswered_submit_is_never_sent_twice_and_its_job_is_adopted(
    db_url, js, monkeypatch
) -> None:
    """FAL queued the job but the answer never came (the client timed out): the row stays
    `submitting`, the redelivery does not submit again, and the job is adopted from the
    webhook that names our key."""
    from sandbox.fal import FalEmulator

    async with FalEmulator(training_seconds=60, queue_seconds=0) as fal:
        for name, value in fal.client_env().items():
            monkeypatch.setenv(name, value)
        fal.add_fault("hang", op="submit", times=1, seconds=2.5)
        config = TrainerConfig.from_env(Env({**ENV, "DATABASE_URL": db_url}))
        pool = await create_pool(db_url, "aisha_trainer")
        store = await js.object_store("aisha_photos")
        gateway = FalGateway(fal.fal_key, timeout=1.0)
        service = TrainingService(pool, gateway, store, config, TrainerMetrics())
        try:
            event = await avatar(db_url)
            await store_photos(db_url, store, event)
            key = idempotency_key(event.avatar_id, 1)
            with pytest.raises(TryLater):
                await service.on_requested(event, delivery())
            assert await sql(db_url, "SELECT state FROM fal_submissions") == "submitting"
            for _ in range(100):  # the held request is handled once the hang is over
                if fal.jobs:
                    break
                await asyncio.sleep(0.05)
            [job] = fal.jobs
            with pytest.raises(TryLater):  # no webhook yet: wait, do not submit
                await service.on_requested(event, delivery())
            await webhook(db_url, job.request_id, key)
            await service.on_requested(event, delivery())
        finally:
            await pool.close()
        assert len(fal.jobs) == 1
        assert await sql(db_url, "SELECT state FROM fal_submissions") == "submitted"
        assert await sql(db_url, "SELECT request_id FROM fal_submissions") == job.request_id
