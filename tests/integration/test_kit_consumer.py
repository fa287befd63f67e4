"""The kit's consumer loop against a real JetStream (and PostgreSQL for idempotency).

Each test provisions the contracts' streams on the session's server, then creates its own
durable consumer (unique name, `DeliverPolicy.NEW`) filtered on a real contract subject, so
messages other tests left in the shared streams never reach it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import nats
import pytest
from nats.js import JetStreamContext, api

from contracts.avatar import TrainingRequested
from contracts.base import encode, new_event_id
from contracts.jetstream import STREAM_AVATAR, STREAM_DLQ, ConsumerSpec
from contracts.registry import dead_letter_subject
from services.kit.broker import consumer_config
from services.kit.consumer import Delivery, EventConsumer, Reject
from services.kit.db import UnitOfWork, create_pool
from services.kit.metrics import KitMetrics
from tests.integration import kit_harness
from tests.integration.kit_harness import SUBJECT, training_requested, wait_until

DLQ_SUBJECT = dead_letter_subject(SUBJECT)


# the shared fixtures, used here by name
nc, js = kit_harness.nc, kit_harness.js


@pytest.fixture
async def spec(js: JetStreamContext) -> AsyncIterator[ConsumerSpec]:
    """A durable of this test only, seeing only messages published after it exists."""
    consumer = ConsumerSpec(
        durable=f"kit-test-{uuid.uuid4().hex[:10]}",
        stream=STREAM_AVATAR.name,
        filter_subjects=(SUBJECT,),
        max_deliver=3,
        ack_wait_seconds=30.0,
        backoff_seconds=(0.05, 0.1),
    )
    config = consumer_config(consumer)
    config.deliver_policy = api.DeliverPolicy.NEW
    await js.add_consumer(consumer.stream, config)
    yield consumer
    await js.delete_consumer(consumer.stream, consumer.durable)


@pytest.fixture
def metrics() -> KitMetrics:
    return KitMetrics("kittest")


def sample(metrics: KitMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(f"aisha_kittest_{name}_total", labels)
    return value or 0.0


class Running:
    """An EventConsumer run in a background task, stopped (bounded) at the end of the test."""

    def __init__(self, consumer: EventConsumer):
        self.consumer = consumer
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(consumer.run(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 5.0)


@pytest.fixture
async def run(
    js: JetStreamContext, spec: ConsumerSpec, metrics: KitMetrics
) -> AsyncIterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(handler: Callable[[TrainingRequested, Delivery], Awaitable[None]], **kw: Any):
        kw.setdefault("fetch_timeout", 0.2)
        consumer = EventConsumer(js, spec, {TrainingRequested: handler}, metrics, **kw)
        running = Running(consumer)
        started.append(running)
        return running

    yield start
    for running in started:
        if not running.task.done():
            running.stop.set()
            running.task.cancel()
        await asyncio.gather(running.task, return_exceptions=True)


async def dead_letter_of(js: JetStreamContext, body: bytes) -> Any:
    """The DLQ message carrying exactly `body` (bodies are unique per test)."""
    found: list[Any] = []

    async def arrived() -> bool:
        try:
            msg = await js.get_last_msg(STREAM_DLQ.name, DLQ_SUBJECT)
        except nats.js.errors.NotFoundError:
            return False
        if msg.data == body:
            found.append(msg)
            return True
        return False

    await wait_until(arrived)
    return found[0]


async def settled(js: JetStreamContext, spec: ConsumerSpec) -> None:
    """Acks are fire-and-forget publishes: wait until the server has applied them."""

    async def nothing_outstanding() -> bool:
        info = await js.consumer_info(spec.stream, spec.durable)
        return info.num_ack_pending == 0 and info.num_pending == 0

    await wait_until(nothing_outstanding)


async def test_ack_happens_only_after_the_handler_returns(
    js: JetStreamContext, spec: ConsumerSpec, run: Callable[..., Running], metrics: KitMetrics
) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()
    seen: list[tuple[str, Delivery]] = []

    async def handler(event: TrainingRequested, delivery: Delivery) -> None:
        seen.append((event.event_id, delivery))
        entered.set()
        await release.wait()

    running = run(handler)
    event = training_requested()
    ack = await js.publish(SUBJECT, encode(event))
    await asyncio.wait_for(entered.wait(), 5)

    info = await js.consumer_info(spec.stream, spec.durable)
    assert info.num_ack_pending == 1
    assert (info.ack_floor.stream_seq or 0) < ack.seq

    release.set()

    async def acked() -> bool:
        info = await js.consumer_info(spec.stream, spec.durable)
        return info.num_ack_pending == 0 and info.ack_floor.stream_seq == ack.seq

    await wait_until(acked)
    await running.close()
    assert seen == [(event.event_id, Delivery(1, 3))]
    assert sample(metrics, "events_consumed", subject=SUBJECT, outcome="ok") == 1


async def test_failing_handler_is_redelivered_then_succeeds(
    js: JetStreamContext, spec: ConsumerSpec, run: Callable[..., Running], metrics: KitMetrics
) -> None:
    deliveries: list[int] = []
    done = asyncio.Event()

    async def handler(event: TrainingRequested, delivery: Delivery) -> None:
        deliveries.append(delivery.number)
        if delivery.number == 1:
            raise RuntimeError("transient")
        done.set()

    running = run(handler)
    await js.publish(SUBJECT, encode(training_requested()))
    await asyncio.wait_for(done.wait(), 5)

    await settled(js, spec)
    await running.close()
    assert deliveries == [1, 2]
    assert sample(metrics, "events_consumed", subject=SUBJECT, outcome="retry") == 1
    assert sample(metrics, "events_consumed", subject=SUBJECT, outcome="ok") == 1
    assert sample(metrics, "dead_letters", subject=SUBJECT, reason="max_deliver") == 0


async def test_after_max_deliver_the_message_is_dead_lettered(
    js: JetStreamContext, spec: ConsumerSpec, run: Callable[..., Running], metrics: KitMetrics
) -> None:
    deliveries: list[Delivery] = []

    async def handler(event: TrainingRequested, delivery: Delivery) -> None:
        deliveries.append(delivery)
        raise RuntimeError(f"always fails {event.avatar_id}")

    running = run(handler)
    event = training_requested()
    body = encode(event)
    ack = await js.publish(SUBJECT, body)

    dead = await dead_letter_of(js, body)
    assert dead.headers["Aisha-Reason"] == "max_deliver"
    assert dead.headers["Aisha-Original-Subject"] == SUBJECT
    assert dead.headers["Aisha-Consumer"] == spec.durable
    assert f"always fails {event.avatar_id}" in dead.headers["Aisha-Error"]
    assert dead.headers["Nats-Msg-Id"] == f"dlq:{STREAM_AVATAR.name}:{ack.seq}"

    async def counted() -> bool:
        return sample(metrics, "dead_letters", subject=SUBJECT, reason="max_deliver") == 1

    await wait_until(counted)
    # Terminated: no fourth delivery arrives, nothing stays pending.
    await settled(js, spec)
    await asyncio.sleep(0.3)
    await running.close()
    assert [d.number for d in deliveries] == [1, 2, 3]
    assert [d.last for d in deliveries] == [False, False, True]


async def test_malformed_body_is_dead_lettered_at_once_and_loop_continues(
    js: JetStreamContext, spec: ConsumerSpec, run: Callable[..., Running], metrics: KitMetrics
) -> None:
    handled: list[str] = []
    good_done = asyncio.Event()

    async def handler(event: TrainingRequested, delivery: Delivery) -> None:
        handled.append(event.event_id)
        good_done.set()

    running = run(handler)
    garbage = f'{{"not json at all {uuid.uuid4()}'.encode()
    wrong_shape = encode(training_requested()).replace(b'"photo_count":12', b'"photo_count":"x"')
    good = training_requested()
    await js.publish(SUBJECT, garbage)
    await js.publish(SUBJECT, wrong_shape)
    await js.publish(SUBJECT, encode(good))

    await asyncio.wait_for(good_done.wait(), 5)
    dead = await dead_letter_of(js, wrong_shape)
    assert dead.headers["Aisha-Reason"] == "malformed"

    async def both_counted() -> bool:
        return sample(metrics, "dead_letters", subject=SUBJECT, reason="malformed") == 2

    await wait_until(both_counted)
    await settled(js, spec)
    await running.close()
    assert handled == [good.event_id]
    assert (await js.consumer_info(spec.stream, spec.durable)).num_redelivered == 0


async def test_reject_dead_letters_immediately(
    js: JetStreamContext, spec: ConsumerSpec, run: Callable[..., Running], metrics: KitMetrics
) -> None:
    deliveries: list[int] = []

    async def handler(event: TrainingRequested, delivery: Delivery) -> None:
        deliveries.append(delivery.number)
        raise Reject("avatar does not exist")

    running = run(handler)
    body = encode(training_requested())
    await js.publish(SUBJECT, body)
    dead = await dead_letter_of(js, body)
    assert dead.headers["Aisha-Reason"] == "rejected"
    assert dead.headers["Aisha-Error"] == "avatar does not exist"
    await asyncio.sleep(0.3)  # room for a (wrong) redelivery
    await running.close()
    assert deliveries == [1]
    assert sample(metrics, "dead_letters", subject=SUBJECT, reason="rejected") == 1


async def test_event_without_handler_is_acked_and_ignored(
    js: JetStreamContext, spec: ConsumerSpec, metrics: KitMetrics
) -> None:
    consumer = EventConsumer(js, spec, {}, metrics, fetch_timeout=0.2)
    running = Running(consumer)
    try:
        await js.publish(SUBJECT, encode(training_requested()))

        async def ignored() -> bool:
            return sample(metrics, "events_consumed", subject=SUBJECT, outcome="ignored") == 1

        await wait_until(ignored)
        await settled(js, spec)
    finally:
        await running.close()


async def test_concurrency_bound_is_respected(
    js: JetStreamContext, spec: ConsumerSpec, run: Callable[..., Running]
) -> None:
    current = 0
    peak = 0
    done: list[str] = []
    total = 10
    all_done = asyncio.Event()

    async def handler(event: TrainingRequested, delivery: Delivery) -> None:
        nonlocal current, peak
        current += 1
        peak = max(peak, current)
        try:
            await asyncio.sleep(0.05)
        finally:
            current -= 1
        done.append(event.event_id)
        if len(done) == total:
            all_done.set()

    events = [training_requested() for _ in range(total)]
    for event in events:
        await js.publish(SUBJECT, encode(event))
    running = run(handler, concurrency=3)
    await asyncio.wait_for(all_done.wait(), 10)
    await running.close()
    assert sorted(done) == sorted(e.event_id for e in events)
    assert peak == 3


async def test_stop_waits_for_in_flight_handlers(
    js: JetStreamContext, spec: ConsumerSpec, run: Callable[..., Running]
) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []

    async def handler(event: TrainingRequested, delivery: Delivery) -> None:
        entered.set()
        await release.wait()
        finished.append(event.event_id)

    running = run(handler)
    event = training_requested()
    await js.publish(SUBJECT, encode(event))
    await asyncio.wait_for(entered.wait(), 5)

    running.stop.set()
    await asyncio.sleep(0.5)  # longer than a fetch timeout: the loop has seen the stop
    assert not running.task.done()
    release.set()
    await asyncio.wait_for(running.task, 5)
    assert finished == [event.event_id]
    await settled(js, spec)


async def test_stop_with_nothing_in_flight_returns_promptly(
    run: Callable[..., Running],
) -> None:
    async def handler(event: TrainingRequested, delivery: Delivery) -> None:
        raise AssertionError("no message was published")

    running = run(handler)
    await asyncio.sleep(0.1)
    running.stop.set()
    await asyncio.wait_for(running.task, 2)


async def test_claim_makes_a_redelivered_effect_happen_once(
    js: JetStreamContext, spec: ConsumerSpec, run: Callable[..., Running], db_url: str
) -> None:
    """The effect commits, then the process "dies" before the ack: the redelivery is a no-op."""
    pool = await create_pool(db_url, role="aisha_bot", max_size=2)
    try:
        deliveries: list[int] = []
        effects: list[str] = []
        second_done = asyncio.Event()

        async def handler(event: TrainingRequested, delivery: Delivery) -> None:
            deliveries.append(delivery.number)
            async with UnitOfWork(pool, "bot") as uow:
                if await uow.claim(spec.durable, event.event_id):
                    effects.append(event.event_id)
            if delivery.number == 1:
                raise ConnectionError("lost before the ack")
            second_done.set()

        running = run(handler)
        event = training_requested()
        await js.publish(SUBJECT, encode(event))
        await asyncio.wait_for(second_done.wait(), 5)
        await running.close()

        assert deliveries == [1, 2]
        assert effects == [event.event_id]
        rows = await pool.fetch(
            "SELECT consumer, event_id::text FROM processed_events WHERE event_id = $1",
            uuid.UUID(event.event_id),
        )
        assert [tuple(r) for r in rows] == [(spec.durable, event.event_id)]
    finally:
        await pool.close()


async def test_claim_rolled_back_with_a_failed_unit_of_work(
    js: JetStreamContext, spec: ConsumerSpec, run: Callable[..., Running], db_url: str
) -> None:
    """A handler that fails inside its transaction leaves no claim: the retry does the work."""
    pool = await create_pool(db_url, role="aisha_bot", max_size=2)
    try:
        claims: list[bool] = []
        done = asyncio.Event()

        async def handler(event: TrainingRequested, delivery: Delivery) -> None:
            async with UnitOfWork(pool, "bot") as uow:
                claims.append(await uow.claim(spec.durable, event.event_id))
                if delivery.number == 1:
                    raise RuntimeError("fails before commit")
            done.set()

        running = run(handler)
        event = training_requested()
        await js.publish(SUBJECT, encode(event))
        await asyncio.wait_for(done.wait(), 5)
        await running.close()
        assert claims == [True, True]
        count = await pool.fetchval("SELECT count(*) FROM processed_events")
        assert count == 1
    finally:
        await pool.close()


async def test_claim_is_per_consumer(db_url: str) -> None:
    pool = await create_pool(db_url, role="aisha_trainer", max_size=2)
    try:
        event_id = new_event_id()
        async with UnitOfWork(pool, "trainer") as uow:
            assert await uow.claim("trainer-avatar", event_id) is True
            assert await uow.claim("trainer-avatar", event_id) is False
            assert await uow.claim("trainer-generation", event_id) is True
        async with UnitOfWork(pool, "trainer") as uow:
            assert await uow.claim("trainer-avatar", event_id) is False
    finally:
        await pool.close()


async def test_report_lag_exports_gauges(
    js: JetStreamContext, spec: ConsumerSpec, metrics: KitMetrics
) -> None:
    for _ in range(2):
        await js.publish(SUBJECT, encode(training_requested()))
    consumer = EventConsumer(js, spec, {}, metrics)
    labels = {"consumer": spec.durable}

    async def reported() -> bool:
        await consumer.report_lag()
        gauge = metrics.registry.get_sample_value
        return (
            gauge("aisha_kittest_consumer_pending", labels) == 2
            and gauge("aisha_kittest_consumer_ack_pending", labels) == 0
            and gauge("aisha_kittest_consumer_redelivered", labels) == 0
        )

    await wait_until(reported)


async def test_connection_pool_is_not_leaked_by_claims(db_url: str) -> None:
    """Units of work give their connection back even when the body raises."""
    pool = await create_pool(db_url, role="aisha_bot", min_size=1, max_size=1)
    try:

        async def failing_unit() -> None:
            async with UnitOfWork(pool, "bot") as uow:
                await uow.claim("c", new_event_id())
                raise RuntimeError("x")

        for _ in range(3):
            with pytest.raises(RuntimeError):
                await failing_unit()
        async with asyncio.timeout(2):
            conn: asyncpg.Connection = await pool.acquire()
            await pool.release(conn)
        assert await pool.fetchval("SELECT count(*) FROM processed_events") == 0
    finally:
        await pool.close()
