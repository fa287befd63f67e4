"""Scenario 6: our consumer loop against FastStream's JetStream pull subscriber, same work.

Both consume the same `aisha.training.progress` events (as the status service publishes
them) from the real stream, through a durable pull consumer with our settings: decode with
the contracts, run a handler that counts, ack. Ours is `EventConsumer` (concurrency 16);
FastStream's is `PullSub(batch_size=16)`, with its per-message log lines off (ours logs
nothing per message either). Throughput: a backlog drained; latency: events published
open-loop while the consumer waits, publish → handler. The two alternate who goes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub

from benchmarks.lab import Lab
from benchmarks.measure import Run, Stopwatch, now, open_loop
from benchmarks.report import Row
from contracts import Event, TrainingProgress, encode, new_event_id, utcnow
from contracts.jetstream import STREAM_TRAINING, ConsumerSpec
from contracts.registry import decode
from services.kit.broker import consumer_config
from services.kit.consumer import Delivery, EventConsumer
from services.kit.metrics import KitMetrics

NEEDS = ("js_consume",)
SUBJECT = TrainingProgress.subject
TARGET = 1.0
Runner = Callable[[Lab, Stopwatch], Awaitable[Callable[[], Awaitable[None]]]]


def _event() -> TrainingProgress:
    return TrainingProgress(
        event_id=new_event_id(),
        occurred_at=utcnow(),
        avatar_id=str(uuid.uuid4()),
        user_id=500_000_000_123,
        attempt=1,
        request_id=str(uuid.uuid4()),
        fal_status="IN_PROGRESS",
        progress=42,
        eta_seconds=600,
    )


def _spec(name: str) -> ConsumerSpec:
    return ConsumerSpec(durable=name, stream=STREAM_TRAINING.name, filter_subjects=(SUBJECT,))


async def ours(lab: Lab, seen: Stopwatch) -> Callable[[], Awaitable[None]]:
    """Start an EventConsumer; returns its stop."""

    async def handle(event: Event, _: Delivery) -> None:
        seen.stop(event.event_id)

    spec = _spec("bench-ours")
    await lab.js.add_consumer(spec.stream, consumer_config(spec))
    consumer = EventConsumer(lab.js, spec, {TrainingProgress: handle}, KitMetrics("bench"))
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))

    async def close() -> None:
        stop.set()
        await task
        await lab.js.delete_consumer(spec.stream, spec.durable)

    return close


async def faststream(lab: Lab, seen: Stopwatch) -> Callable[[], Awaitable[None]]:
    """Start a FastStream broker with one pull subscriber; returns its stop."""
    spec = _spec("bench-faststream")
    await lab.js.add_consumer(spec.stream, consumer_config(spec))
    broker = NatsBroker(lab.nats_url, logger=None)

    async def decoder(msg: NatsMessage) -> Any:
        return decode(msg.raw_message.subject, msg.body)

    @broker.subscriber(
        SUBJECT,
        stream=JStream(STREAM_TRAINING.name, declare=False),
        durable=spec.durable,
        pull_sub=PullSub(batch_size=16, timeout=1.0),
        decoder=decoder,
    )
    async def handle(event: Any) -> None:
        seen.stop(event.event_id)

    await broker.start()

    async def close() -> None:
        await broker.stop()
        with contextlib.suppress(Exception):
            await lab.js.delete_consumer(spec.stream, spec.durable)

    return close


async def _backlog(lab: Lab, start: Runner, count: int) -> Run:
    await lab.js.purge_stream(STREAM_TRAINING.name, subject=SUBJECT)
    events = [_event() for _ in range(count)]
    for first in range(0, count, 200):
        chunk = events[first : first + 200]
        await asyncio.gather(*(lab.js.publish(SUBJECT, encode(e)) for e in chunk))
    seen = Stopwatch()
    started = now()
    for e in events:
        seen.start(e.event_id, started)
    close = await start(lab, seen)
    try:
        await seen.wait(count, 120.0, "handled events")
    finally:
        await close()
    return Run(count, seen.span()[1] - started)


async def _latency(lab: Lab, start: Runner, count: int, rate: float) -> list[float]:
    await lab.js.purge_stream(STREAM_TRAINING.name, subject=SUBJECT)
    events = [_event() for _ in range(count)]
    seen = Stopwatch()
    close = await start(lab, seen)
    try:
        await asyncio.sleep(0.2)  # the consumer is waiting in its fetch

        async def publish(i: int) -> None:
            await lab.js.publish(SUBJECT, encode(events[i]))

        await open_loop(publish, rate, count, lambda i, at: seen.start(events[i].event_id, at))
        await seen.wait(count, 60.0, "handled events")
    finally:
        await close()
    return seen.latencies_ms()


async def run(lab: Lab, baselines: dict[str, Row]) -> list[Row]:
    sizes = lab.sizes
    mine = Row("pipeline", "6. events: EventConsumer", "scenario", unit="msg/s")
    theirs = Row("pipeline_faststream", "6. events: FastStream", "scenario", unit="msg/s")
    order = [(mine, ours), (theirs, faststream)]
    try:
        for _, start in order:
            await _backlog(lab, start, 200)  # warm-up
        for i in range(sizes.repeats):
            for row, start in order if i % 2 == 0 else order[::-1]:
                result = await _backlog(lab, start, sizes.pipeline_messages)
                result.latencies_ms = await _latency(
                    lab, start, sizes.pipeline_latency_messages, sizes.pipeline_rate
                )
                row.runs.append(result)
    finally:
        await lab.js.purge_stream(STREAM_TRAINING.name, subject=SUBJECT)
    raw = baselines["js_consume"]
    theirs.ratio, theirs.ratio_of = theirs.rate / raw.rate, "vs raw pull + ack"
    mine.ratio, mine.ratio_of = mine.rate / theirs.rate, "vs FastStream"
    mine.target = f"≥ {TARGET:.1f}× FastStream"
    mine.judge(mine.ratio >= TARGET, f"{mine.ratio:.2f}× ({mine.rate / raw.rate:.2f}× raw)")
    mine.notes.append(
        f"backlog of {sizes.pipeline_messages:,} events drained; latency: "
        f"{sizes.pipeline_latency_messages} events at {sizes.pipeline_rate:.0f}/s into an idle "
        f"consumer, publish → handler (FastStream p50 {theirs.pct(50):.1f} ms, p99 "
        f"{theirs.pct(99):.1f} ms)"
    )
    return [mine, theirs]
