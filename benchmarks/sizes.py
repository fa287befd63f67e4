"""How much work each measurement does: the full run, and the tiny quick one (CI, < 60 s)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    quick: bool
    repeats: int  # repetitions of each scenario
    tail_repeats: int  # ... of scenarios 1 and 2, judged on a p99 (the median of more runs)
    baseline_repeats: int  # repetitions of each raw baseline
    concurrency: int  # in-flight requests of closed-loop load (client side)
    latency_samples: int  # one-at-a-time calls for a baseline's unloaded latency
    http_requests: int
    js_messages: int
    db_updates: int
    polling_updates: int
    feed_updates: int
    ingest_webhooks: int  # scenario 1, closed loop
    ingest_latency_seconds: float  # scenario 1, open loop at half the sustained rate
    ingest_warmup_seconds: float  # ... first at that rate, not measured
    completion_rate: float  # scenario 2
    completion_seconds: float
    conversation_users: int  # scenario 3: users talking to the bot at once
    conversation_rounds: int  # ... each going through the create-avatar dialogue this often
    scale_trainings: int  # scenario 4
    scale_seconds: float
    fanout_users: int  # scenario 5
    pipeline_messages: int  # scenario 6, backlog
    pipeline_latency_messages: int  # scenario 6, open loop
    pipeline_rate: float


FULL = Sizes(
    quick=False,
    repeats=3,
    tail_repeats=5,
    baseline_repeats=5,
    concurrency=16,
    latency_samples=500,
    http_requests=3000,
    js_messages=5000,
    db_updates=5000,
    polling_updates=2000,
    feed_updates=5000,
    ingest_webhooks=2000,
    ingest_latency_seconds=5.0,
    ingest_warmup_seconds=1.0,
    completion_rate=100.0,
    completion_seconds=5.0,
    conversation_users=40,
    conversation_rounds=3,
    scale_trainings=10_000,
    scale_seconds=15.0,
    fanout_users=1000,
    pipeline_messages=10_000,
    pipeline_latency_messages=1000,
    pipeline_rate=200.0,
)

QUICK = Sizes(
    quick=True,
    repeats=1,
    tail_repeats=1,
    baseline_repeats=1,
    concurrency=16,
    latency_samples=50,
    http_requests=300,
    js_messages=300,
    db_updates=300,
    polling_updates=200,
    feed_updates=300,
    ingest_webhooks=150,
    ingest_latency_seconds=1.0,
    ingest_warmup_seconds=0.2,
    completion_rate=100.0,
    completion_seconds=1.0,
    conversation_users=8,
    conversation_rounds=1,
    scale_trainings=10_000,
    scale_seconds=3.0,
    fanout_users=60,
    pipeline_messages=1000,
    pipeline_latency_messages=100,
    pipeline_rate=200.0,
)
