"""Timing primitives: one run's outcome, percentiles, closed- and open-loop load, stopwatches.

Latencies are wall-clock milliseconds from `time.perf_counter()` (CLOCK_MONOTONIC, so also
comparable between processes on one machine). Open-loop load measures from each request's
*scheduled* time, so a stalled server cannot hide its backlog (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field

Op = Callable[[int], Awaitable[None]]


class BenchError(RuntimeError):
    """A measurement could not complete (a wait ran out, results are missing)."""


@dataclass
class Run:
    """One repetition of one measurement."""

    count: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def now() -> float:
    return time.perf_counter()


async def closed_loop(op: Op, total: int, concurrency: int) -> Run:
    """`total` calls of `op(i)` by `concurrency` workers, each starting as the last ends."""
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            started = now()
            await op(i)
            latencies.append((now() - started) * 1000)

    started = now()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
    return Run(total, now() - started, latencies)


async def sequential(op: Op, total: int) -> list[float]:
    """Latency of `total` calls made one at a time (the unloaded service time)."""
    return (await closed_loop(op, total, 1)).latencies_ms


async def open_loop(
    op: Op,
    rate: float,
    count: int,
    scheduled: Callable[[int, float], None] | None = None,
) -> Run:
    """Start `op(i)` at `t0 + i / rate` whatever the previous calls do; `scheduled(i, at)`
    learns each scheduled time (for completions observed elsewhere)."""
    latencies: list[float] = [math.nan] * count

    async def timed(i: int, at: float) -> None:
        await op(i)
        latencies[i] = (now() - at) * 1000

    tasks: list[asyncio.Task[None]] = []
    t0 = now() + 0.005
    for i in range(count):
        at = t0 + i / rate
        delay = at - now()
        if delay > 0:
            await asyncio.sleep(delay)
        if scheduled is not None:
            scheduled(i, at)
        tasks.append(asyncio.create_task(timed(i, at)))
    await asyncio.gather(*tasks)
    return Run(count, now() - t0, latencies)


class Stopwatch:
    """Start times by key, stopped when a completion is observed (an event, a message).

    Unknown and repeated stops are ignored, so duplicate deliveries do not count twice.
    """

    def __init__(self) -> None:
        self._started: dict[Hashable, float] = {}
        self.stopped: dict[Hashable, float] = {}
        self._changed = asyncio.Event()

    def start(self, key: Hashable, at: float | None = None) -> None:
        self._started[key] = now() if at is None else at

    def stop(self, key: Hashable, at: float | None = None) -> None:
        if key in self._started and key not in self.stopped:
            self.stopped[key] = now() if at is None else at
            self._changed.set()

    def latencies_ms(self) -> list[float]:
        return [(t - self._started[k]) * 1000 for k, t in self.stopped.items()]

    def span(self) -> tuple[float, float]:
        """First start and last stop (seconds, perf_counter)."""
        return min(self._started.values()), max(self.stopped.values())

    async def wait(self, count: int, within: float, what: str = "completions") -> None:
        """Until `count` keys stopped; BenchError after `within` seconds."""
        deadline = now() + within
        while len(self.stopped) < count:
            left = deadline - now()
            if left <= 0:
                raise BenchError(f"only {len(self.stopped)}/{count} {what} within {within:.0f}s")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
            except TimeoutError:
                continue
