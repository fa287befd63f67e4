"""Unit of work + outbox relay against real PostgreSQL and JetStream; pool roles and grants.

Each test gets a fresh database (so the outbox holds only its rows) and its own durable
collector (`DeliverPolicy.NEW`) on the real subject, so the shared stream's other messages
never count.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar

import asyncpg
import nats
import nats.errors
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from contracts.base import Event, encode, new_event_id, utcnow
from contracts.jetstream import STREAM_AVATAR
from services.kit.db import UnitOfWork, create_pool, insert_outbox
from services.kit.metrics import KitMetrics
from services.kit.outbox import OutboxRelay, OutboxShortcut
from tests.integration import kit_harness
from tests.integration.kit_harness import SUBJECT, training_requested, wait_until

PRODUCER = "bot"


# the shared fixtures, used here by name
nc, js = kit_harness.nc, kit_harness.js


class Collector:
    """A durable pull consumer of this test on SUBJECT, created before anything is published."""

    def __init__(self, js: JetStreamContext, durable: str, sub: Any):
        self.js = js
        self.durable = durable
        self._sub = sub

    async def take(self, expected: int, within: float = 5.0) -> list[Msg]:
        """At least `expected` messages, plus any extra that arrive right after."""
        got: list[Msg] = []
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                batch = await self._sub.fetch(100, timeout=0.3)
            except (nats.errors.TimeoutError, TimeoutError):
                if len(got) >= expected:
                    break
                continue
            for msg in batch:
                await msg.ack()
            got.extend(batch)
        return got


@pytest.fixture
async def collector(js: JetStreamContext) -> AsyncIterator[Collector]:
    durable = f"kit-outbox-{uuid.uuid4().hex[:10]}"
    await js.add_consumer(
        STREAM_AVATAR.name,
        api.ConsumerConfig(
            durable_name=durable,
            filter_subject=SUBJECT,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.NEW,
        ),
    )
    sub = await js.pull_subscribe_bind(durable=durable, stream=STREAM_AVATAR.name)
    yield Collector(js, durable, sub)
    await sub.unsubscribe()
    await js.delete_consumer(STREAM_AVATAR.name, durable)


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(db_url, role="aisha_bot", min_size=1, max_size=4)
    yield created
    await created.close()


@pytest.fixture
def metrics() -> KitMetrics:
    return KitMetrics("bot")


class RunningRelay:
    def __init__(self, relay: OutboxRelay):
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(relay.run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 5)


@pytest.fixture
async def start_relay() -> AsyncIterator[Callable[..., RunningRelay]]:
    started: list[RunningRelay] = []

    def start(*args: Any, **kwargs: Any) -> RunningRelay:
        running = RunningRelay(OutboxRelay(*args, **kwargs))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop.set()
        try:
            await asyncio.wait_for(running.task, 5)
        except TimeoutError:
            running.task.cancel()
            await asyncio.gather(running.task, return_exceptions=True)


def published(metrics: KitMetrics, outcome: str = "ok") -> float:
    value = metrics.registry.get_sample_value(
        "aisha_bot_events_published_total", {"subject": SUBJECT, "outcome": outcome}
    )
    return value or 0.0


async def outbox_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT id::text, producer, subject, payload, published_at, attempts FROM outbox "
        "ORDER BY created_at"
    )


async def commit(pool: asyncpg.Pool, *events: Event) -> None:
    async with UnitOfWork(pool, PRODUCER) as uow:
        uow.publish(*events)


async def test_committed_events_are_relayed_with_msg_id_and_marked_published(
    js: JetStreamContext,
    collector: Collector,
    pool: asyncpg.Pool,
    metrics: KitMetrics,
    start_relay: Callable[..., RunningRelay],
) -> None:
    events = [training_requested() for _ in range(3)]
    async with UnitOfWork(pool, PRODUCER) as uow:
        uow.publish(events[0])
        uow.publish(*events[1:])
        # Queued in memory only until commit.
        assert await uow.conn.fetchval("SELECT count(*) FROM outbox") == 0

    rows = await outbox_rows(pool)
    assert [r["id"] for r in rows] == [e.event_id for e in events]
    assert {r["producer"] for r in rows} == {PRODUCER}
    assert {r["subject"] for r in rows} == {SUBJECT}
    assert [bytes(r["payload"]) for r in rows] == [encode(e) for e in events]
    assert all(r["published_at"] is None for r in rows)

    relay = start_relay(pool, js, PRODUCER, metrics, poll_interval=0.2)
    msgs = await collector.take(len(events))
    await relay.close()

    assert [m.headers["Nats-Msg-Id"] if m.headers else None for m in msgs] == [
        e.event_id for e in events
    ]
    assert [m.data for m in msgs] == [encode(e) for e in events]
    assert all(m.subject == SUBJECT for m in msgs)
    rows = await outbox_rows(pool)
    assert all(r["published_at"] is not None for r in rows)
    assert all(r["attempts"] == 0 for r in rows)
    assert published(metrics) == len(events)


async def test_rolled_back_unit_of_work_publishes_nothing(
    js: JetStreamContext, collector: Collector, pool: asyncpg.Pool, metrics: KitMetrics
) -> None:

    async def failing_handler() -> None:
        async with UnitOfWork(pool, PRODUCER) as uow:
            await uow.claim("bot-test", new_event_id())
            uow.publish(training_requested())
            raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        await failing_handler()
    assert await outbox_rows(pool) == []
    assert await pool.fetchval("SELECT count(*) FROM processed_events") == 0

    relay = OutboxRelay(pool, js, PRODUCER, metrics)
    assert await relay.flush_once() == 0
    assert await collector.take(0, within=0.5) == []
    assert published(metrics) == 0


async def test_flush_failure_in_the_transaction_rolls_back_the_work(pool: asyncpg.Pool) -> None:
    """The outbox insert runs at commit: if it fails, the state change must not commit."""

    async def unit() -> None:
        async with UnitOfWork(pool, "nobody") as uow:  # violates outbox's producer check
            await uow.claim("bot-test", new_event_id())
            uow.publish(training_requested())

    with pytest.raises(asyncpg.CheckViolationError):
        await unit()
    assert await pool.fetchval("SELECT count(*) FROM processed_events") == 0
    assert await outbox_rows(pool) == []


async def test_same_event_twice_is_published_once(
    js: JetStreamContext, collector: Collector, pool: asyncpg.Pool, metrics: KitMetrics
) -> None:
    event = training_requested()
    await commit(pool, event)
    await commit(pool, event)  # a retried step re-queues its (deterministic) event
    async with pool.acquire() as conn, conn.transaction():
        await insert_outbox(conn, PRODUCER, [event, event])
    rows = await outbox_rows(pool)
    assert [r["id"] for r in rows] == [event.event_id]

    relay = OutboxRelay(pool, js, PRODUCER, metrics)
    assert await relay.flush_once() == 1
    assert await relay.flush_once() == 0

    # A relay that crashed after publishing but before marking the row republishes it:
    # JetStream drops the copy inside the duplicate window (Nats-Msg-Id = event id).
    await pool.execute("UPDATE outbox SET published_at = NULL")
    assert await relay.flush_once() == 1

    msgs = await collector.take(1, within=2.0)
    assert [m.headers["Nats-Msg-Id"] if m.headers else None for m in msgs] == [event.event_id]


async def test_notify_wakes_the_relay_long_before_its_poll_interval(
    js: JetStreamContext,
    collector: Collector,
    pool: asyncpg.Pool,
    metrics: KitMetrics,
    start_relay: Callable[..., RunningRelay],
) -> None:
    relay = start_relay(pool, js, PRODUCER, metrics, poll_interval=30.0)
    first = training_requested()
    await commit(pool, first)
    assert [m.data for m in await collector.take(1, within=5.0)] == [encode(first)]
    await asyncio.sleep(0.3)  # the relay is now idle in its 30 s wait

    second = training_requested()
    await commit(pool, second)
    msgs = await collector.take(1, within=5.0)
    assert [m.data for m in msgs] == [encode(second)]

    started = time.monotonic()
    await relay.close()  # the stop event also ends the 30 s wait
    assert time.monotonic() - started < 5
    assert published(metrics) == 2


async def test_relay_ignores_other_producers_rows(
    js: JetStreamContext, collector: Collector, pool: asyncpg.Pool, metrics: KitMetrics
) -> None:
    async with UnitOfWork(pool, "trainer") as uow:
        uow.publish(training_requested())
    relay = OutboxRelay(pool, js, PRODUCER, metrics)
    assert await relay.flush_once() == 0
    assert (await outbox_rows(pool))[0]["published_at"] is None


async def test_two_relays_on_one_producer_do_not_double_publish(
    js: JetStreamContext,
    collector: Collector,
    db_url: str,
    pool: asyncpg.Pool,
    start_relay: Callable[..., RunningRelay],
) -> None:
    pool_b = await create_pool(db_url, role="aisha_bot", min_size=1, max_size=3)
    try:
        metrics_a, metrics_b = KitMetrics("bot"), KitMetrics("bot")
        relay_a = start_relay(pool, js, PRODUCER, metrics_a, batch=5, poll_interval=0.1)
        relay_b = start_relay(pool_b, js, PRODUCER, metrics_b, batch=5, poll_interval=0.1)
        events = [training_requested() for _ in range(60)]
        for i in range(0, len(events), 6):
            await commit(pool, *events[i : i + 6])

        async def all_published() -> bool:
            unpublished = await pool.fetchval(
                "SELECT count(*) FROM outbox WHERE published_at IS NULL"
            )
            return bool(unpublished == 0)

        await wait_until(all_published, within=10)
        msgs = await collector.take(len(events))
        await relay_a.close()
        await relay_b.close()

        ids = [m.headers["Nats-Msg-Id"] if m.headers else None for m in msgs]
        assert sorted(ids, key=str) == sorted(e.event_id for e in events)
        # SKIP LOCKED alone keeps the publishes unique (JetStream dedupe is the backstop).
        assert published(metrics_a) + published(metrics_b) == len(events)
    finally:
        await pool_b.close()


async def test_publish_failure_counts_an_attempt_and_keeps_the_row(
    js: JetStreamContext, pool: asyncpg.Pool, metrics: KitMetrics
) -> None:
    """A subject no stream captures gets no ack: the row stays pending with attempts + 1."""
    nowhere = f"kit.test.nostream.{uuid.uuid4().hex}"
    event_id = new_event_id()
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO outbox (id, producer, subject, payload) VALUES ($1, $2, $3, $4)",
            uuid.UUID(event_id),
            PRODUCER,
            nowhere,
            b"{}",
        )
    relay = OutboxRelay(pool, js, PRODUCER, metrics)
    assert await relay.flush_once() == 0
    [row] = await outbox_rows(pool)
    assert row["published_at"] is None
    assert row["attempts"] == 1
    errors = metrics.registry.get_sample_value(
        "aisha_bot_events_published_total", {"subject": nowhere, "outcome": "error"}
    )
    assert errors == 1


async def test_a_batch_goes_out_in_order_and_only_the_unacked_row_stays(
    js: JetStreamContext, collector: Collector, pool: asyncpg.Pool, metrics: KitMetrics
) -> None:
    """The batch is published back to back: one row nobody acknowledges (no stream) stays
    pending with attempts + 1; the rows around it go out, in the order they were queued."""
    first, last = training_requested(), training_requested()
    nowhere = f"kit.test.nostream.{uuid.uuid4().hex}"
    async with pool.acquire() as conn, conn.transaction():
        await insert_outbox(conn, PRODUCER, [first])
        await conn.execute(
            "INSERT INTO outbox (id, producer, subject, payload) VALUES ($1, $2, $3, $4)",
            uuid.uuid4(),
            PRODUCER,
            nowhere,
            b"{}",
        )
        await insert_outbox(conn, PRODUCER, [last])
    relay = OutboxRelay(pool, js, PRODUCER, metrics)
    assert await relay.flush_once() == 2
    msgs = await collector.take(2)
    assert [m.data for m in msgs] == [encode(first), encode(last)]
    rows = {r["subject"]: r for r in await outbox_rows(pool)}
    assert rows[nowhere]["published_at"] is None
    assert rows[nowhere]["attempts"] == 1
    assert rows[SUBJECT]["published_at"] is not None
    assert await relay.flush_once() == 0  # the unacked row is tried again, still no ack


class Nowhere(Event, frozen=True, kw_only=True, tag="kit.test.nowhere"):
    """An event whose subject no stream captures: JetStream never acknowledges it."""

    subject: ClassVar[str] = "kit.test.nowhere.event"


async def test_shortcut_publishes_committed_events_at_once_and_marks_them(
    js: JetStreamContext, collector: Collector, pool: asyncpg.Pool, metrics: KitMetrics
) -> None:
    events = [training_requested() for _ in range(3)]
    lost = Nowhere(event_id=new_event_id(), occurred_at=utcnow())
    async with pool.acquire() as conn, conn.transaction():  # committed, no relay running
        await insert_outbox(conn, PRODUCER, [*events, lost])
    shortcut = OutboxShortcut(pool, js, metrics, mark_delay=0.0)
    stop = asyncio.Event()
    marker = asyncio.create_task(shortcut.run(stop))
    try:
        await shortcut.publish(*events, lost)
        msgs = await collector.take(3)
        assert [m.data for m in msgs] == [encode(e) for e in events]
        assert [m.headers["Nats-Msg-Id"] if m.headers else None for m in msgs] == [
            e.event_id for e in events
        ]

        async def marked() -> bool:
            rows = await outbox_rows(pool)
            return sum(r["published_at"] is not None for r in rows) == len(events)

        await wait_until(marked)
    finally:
        stop.set()
        await asyncio.wait_for(marker, 5)
    # what JetStream did not acknowledge is left to the relay, untouched
    [pending] = [r for r in await outbox_rows(pool) if r["published_at"] is None]
    assert pending["id"] == lost.event_id
    assert pending["attempts"] == 0
    assert published(metrics) == len(events)


async def test_housekeeping_prunes_old_rows_and_reports_backlog(
    js: JetStreamContext, pool: asyncpg.Pool, metrics: KitMetrics
) -> None:
    old, recent, pending = training_requested(), training_requested(), training_requested()
    await commit(pool, old, recent)
    relay = OutboxRelay(pool, js, PRODUCER, metrics, retention_hours=24)
    assert await relay.flush_once() == 2
    await commit(pool, pending)
    await pool.execute(
        "UPDATE outbox SET published_at = now() - interval '25 hours' WHERE id = $1",
        uuid.UUID(old.event_id),
    )
    await relay._housekeeping()
    assert sorted(r["id"] for r in await outbox_rows(pool)) == sorted(
        [recent.event_id, pending.event_id]
    )
    assert metrics.registry.get_sample_value("aisha_bot_outbox_backlog") == 1


async def test_pool_runs_as_its_role_and_grants_apply(db_url: str) -> None:
    trainer = await create_pool(db_url, role="aisha_trainer", min_size=1, max_size=1)
    bot = await create_pool(db_url, role="aisha_bot", min_size=1, max_size=1)
    try:
        await bot.execute("INSERT INTO users (id, first_name) VALUES (5001, 'Ann')")
        for _ in range(2):  # the role survives the pool's reset between uses
            async with trainer.acquire() as conn:
                assert await conn.fetchval("SELECT current_user") == "aisha_trainer"
                assert await conn.fetchval("SHOW application_name") == "aisha-aisha_trainer"
                await conn.execute("RESET ALL")
                assert await conn.fetchval("SELECT current_user") == "aisha_trainer"
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await trainer.execute("UPDATE users SET language = 'ru' WHERE id = 5001")
        await bot.execute("UPDATE users SET language = 'ru' WHERE id = 5001")
        assert await bot.fetchval("SELECT language FROM users WHERE id = 5001") == "ru"
        assert await bot.fetchval("SELECT current_user") == "aisha_bot"
    finally:
        await trainer.close()
        await bot.close()


async def test_pool_without_role_runs_as_the_connecting_user(db_url: str) -> None:
    admin = await create_pool(db_url, role=None, min_size=1, max_size=1)
    try:
        assert await admin.fetchval("SELECT current_user = session_user") is True
        assert await admin.fetchval("SHOW application_name") == "aisha-admin"
        # jsonb round-trips through the codec the pool installs.
        assert await admin.fetchval("SELECT $1::jsonb", {"a": [1, 2]}) == {"a": [1, 2]}
    finally:
        await admin.close()


async def test_unit_of_work_outside_its_block_refuses_use(pool: asyncpg.Pool) -> None:
    uow = UnitOfWork(pool, PRODUCER)
    with pytest.raises(RuntimeError, match="not open"):
        _ = uow.conn
    async with uow:
        assert await uow.conn.fetchval("SELECT 1") == 1
    with pytest.raises(RuntimeError, match="not open"):
        _ = uow.conn
