"""Scenario 1: signed FAL webhooks → verified → recorded → avatar updated → event published.

The status service runs as its own process. A webhook counts as done when its
`aisha.training.completed` event is seen on NATS (so the outbox relay is inside the
measurement). Sustained rate: a closed loop with `concurrency` webhooks in flight, from the
first POST to the last event. Latency: an open loop at half that rate, from each webhook's
scheduled send time to its event.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from collections.abc import AsyncIterator

import msgspec
from nats.aio.msg import Msg

from benchmarks import seed
from benchmarks.falhooks import Poster, SignedWebhook
from benchmarks.lab import Lab, ServiceProcess
from benchmarks.measure import Run, Stopwatch, closed_loop, now, open_loop, percentile
from benchmarks.report import Row
from contracts import TrainingCompleted
from sandbox.embedded import free_port
from sandbox.supervisor import base_env

NEEDS = ("raw_http", "pg_update", "js_publish", "least_ingest")
PARTS = ("raw_http", "pg_update", "js_publish")
TARGET_RATIO = 0.5
TARGET_P99_MS = 20.0


class Completions:
    """Stops `stopwatch` for each completed-training event seen on NATS (core subscription)."""

    def __init__(self) -> None:
        self.stopwatch = Stopwatch()

    async def on_message(self, msg: Msg) -> None:
        event = msgspec.json.decode(msg.data, type=TrainingCompleted)
        self.stopwatch.stop(event.request_id)


async def hooks(lab: Lab, count: int) -> list[SignedWebhook]:
    made = await seed.trainings(lab.pool, seed.new_user_ids(count))
    return [lab.signer.completed(t.request_id) for t in made]


async def sustained(lab: Lab, poster: Poster, seen: Completions, count: int) -> Run:
    """`count` webhooks, `concurrency` in flight: first POST → last completed event on NATS."""
    made = await hooks(lab, count)
    seen.stopwatch = Stopwatch()

    async def post(i: int) -> None:
        seen.stopwatch.start(made[i].request_id)
        await poster.post(made[i])

    started = now()
    http = await closed_loop(post, count, lab.sizes.concurrency)
    await seen.stopwatch.wait(count, 120.0, "completed events")
    _, last = seen.stopwatch.span()
    return Run(count, last - started, extra={"http_rate": http.rate})


async def _latency(lab: Lab, poster: Poster, seen: Completions, rate: float) -> Run:
    """Open loop at `rate`; the first `ingest_warmup_seconds` of it are sent but not measured.

    The run before this one saturates the service, and its aftermath (autovacuum of the rows it
    updated, the relay's clean-up) lands in the next second: the slow deliveries of a latency
    run clustered there. The warm-up brings the system to the steady state being measured."""
    warm = int(rate * lab.sizes.ingest_warmup_seconds)
    count = max(20, int(rate * lab.sizes.ingest_latency_seconds))
    made = await hooks(lab, warm + count)
    seen.stopwatch = Stopwatch()

    async def post(i: int) -> None:
        await poster.post(made[i])

    def scheduled(i: int, at: float) -> None:
        if i >= warm:
            seen.stopwatch.start(made[i].request_id, at)

    http = await open_loop(post, rate, warm + count, scheduled)
    await seen.stopwatch.wait(count, 120.0, "completed events")
    measured = http.latencies_ms[warm:]
    return Run(
        count,
        http.seconds,
        seen.stopwatch.latencies_ms(),
        {
            "offered_rate": rate,
            "http_p50_ms": percentile(measured, 50),
            "http_p99_ms": percentile(measured, 99),
        },
    )


@contextlib.asynccontextmanager
async def least_server(lab: Lab) -> AsyncIterator[str]:
    """`least_server.py` running; yields its webhook URL."""
    signer = await lab.signing()
    port = free_port()
    env = {
        **base_env(),
        "DATABASE_URL": lab.db_url,
        "NATS_URL": lab.nats_url,
        "FAL_JWKS_URL": signer.jwks_url,
    }
    server = ServiceProcess("benchmarks.least_server", env, lab.log("least"), args=[str(port)])
    await server.start()
    try:
        await server.wait_ready(port, within=30.0)
        yield f"http://127.0.0.1:{port}/fal/webhook"
    finally:
        await server.stop()


async def run(lab: Lab, baselines: dict[str, Row]) -> Row:
    """The least ingest and ours take turns (its sustained run just before each of ours), so
    each rate ratio compares two runs seconds apart under the same load on the machine."""
    sizes = lab.sizes
    await lab.status()
    row = Row("webhook_ingest", "1. webhook ingest", "scenario", unit="hook/s")
    seen = Completions()
    ratios: list[float] = []
    sub = await lab.nc.subscribe(TrainingCompleted.subject, cb=seen.on_message)
    try:
        async with (
            Poster(lab.webhook_url, sizes.concurrency) as poster,
            least_server(lab) as least_url,
            Poster(least_url, sizes.concurrency) as least,
        ):
            await sustained(lab, least, seen, 50)  # warm-up
            await sustained(lab, poster, seen, 50)  # warm-up: JWKS, prepared statements
            for _ in range(sizes.tail_repeats):
                floor = await sustained(lab, least, seen, sizes.ingest_webhooks)
                closed = await sustained(lab, poster, seen, sizes.ingest_webhooks)
                ratios.append(closed.rate / floor.rate)
                latency = await _latency(lab, poster, seen, closed.rate / 2)
                closed.latencies_ms = latency.latencies_ms
                closed.extra.update(latency.extra)
                row.runs.append(closed)
    finally:
        await sub.unsubscribe()
        await lab.purge_training_events()
    least_rate = baselines["least_ingest"].rate
    slowest = min((baselines[k] for k in PARTS), key=lambda r: r.rate)
    row.ratio, row.ratio_of = statistics.median(ratios), "vs the least ingest (paired runs)"
    row.target = (
        f"rate ≥ {TARGET_RATIO:.0%} of the least ingest; p99 ≤ {TARGET_P99_MS:.0f} ms at ½ rate"
    )
    p99 = row.pct(99)
    ok = row.ratio >= TARGET_RATIO and not math.isnan(p99) and p99 <= TARGET_P99_MS
    row.judge(
        ok,
        f"{row.ratio:.2f}× (pairs {min(ratios):.2f}–{max(ratios):.2f}); p99 {p99:.1f} ms at "
        f"{row.extra('offered_rate'):.0f}/s. As filed (≥ {TARGET_RATIO:.0%} of the slowest raw "
        f"part, {slowest.title}): {row.rate / slowest.rate:.2f}×, the least ingest itself "
        f"{least_rate / slowest.rate:.2f}×",
    )
    row.notes.append(
        f"throughput: {sizes.concurrency} webhooks in flight, first POST → last completed event "
        f"on NATS (HTTP answers alone: {row.extra('http_rate'):.0f}/s); latency: open loop at "
        f"half the sustained rate after a {lab.sizes.ingest_warmup_seconds:g} s warm-up at that "
        f"rate, scheduled send → event on NATS (HTTP answer p50 "
        f"{row.extra('http_p50_ms'):.1f} ms, p99 {row.extra('http_p99_ms'):.1f} ms)"
    )
    return row
