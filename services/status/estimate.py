"""Progress from time: elapsed seconds against the typical duration of the same training.

FAL's trainers print nothing documented (`progress.py`), so while a training runs the
user sees an estimate: elapsed time over the typical duration of this endpoint and step
count, learned from our own completed trainings (`training_started_at` →
`training_finished_at`, both status-owned): the median of the last `samples` runs with
the same endpoint and steps, else the endpoint's median seconds per step times the steps
(FAL prices a run linearly in steps), else a starting value. The starting values are our
assumption, not a FAL figure (no public source gives one): portrait 2500 steps ≈ 20 min,
fast training 1000 steps ≈ 5 min. An estimate never shows more than `CAP` percent: only
the end of the training says 100.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import asyncpg

from services.kit.db import DB_ERRORS

log = logging.getLogger(__name__)

CAP = 95
#: Seconds per step before any training of the endpoint completed (our assumption).
STARTING_SECONDS_PER_STEP = {
    "fal-ai/flux-lora-portrait-trainer": 20 * 60 / 2500,
    "fal-ai/flux-lora-fast-training": 5 * 60 / 1000,
}
_OTHER_ENDPOINT = 20 * 60 / 2500
_DEFAULT_STEPS = 1000
#: Fewer completed runs than this teach nothing (one odd run would set the estimate).
MIN_SAMPLES = 3

_COMPLETED = """
SELECT fal_endpoint, steps, seconds FROM (
    SELECT fal_endpoint, steps,
        extract(epoch FROM training_finished_at - training_started_at)::float8 AS seconds,
        row_number() OVER (PARTITION BY fal_endpoint, steps
                           ORDER BY training_finished_at DESC) AS recent
    FROM avatars
    WHERE fal_status = 'COMPLETED' AND fal_endpoint IS NOT NULL AND steps > 0
      AND training_finished_at > training_started_at
) runs WHERE recent <= $1
"""


class Estimate(NamedTuple):
    percent: int
    eta_seconds: int | None


def estimate(elapsed: float, typical: float) -> Estimate:
    """`elapsed` of `typical` seconds, capped at `CAP`; no time left to tell once the
    training runs longer than usual (the bar waits at the cap instead)."""
    if typical <= 0:
        return Estimate(0, None)
    elapsed = max(0.0, elapsed)
    percent = min(CAP, int(100 * elapsed / typical))
    left = typical - elapsed
    return Estimate(percent, int(left) if left >= 1 else None)


@dataclass
class TypicalDurations:
    """The learned durations, cached in memory and refreshed every `refresh_seconds`."""

    pool: asyncpg.Pool
    refresh_seconds: float = 600.0
    samples: int = 20
    _exact: dict[tuple[str, int], float] = field(default_factory=dict)
    _per_step: dict[str, float] = field(default_factory=dict)
    _loaded: float | None = None

    async def seconds(self, endpoint: str | None, steps: int | None) -> float:
        """The typical duration of a training with this endpoint and step count."""
        if self._loaded is None or time.monotonic() - self._loaded >= self.refresh_seconds:
            await self.refresh()
        return self.typical(endpoint, steps)

    def typical(self, endpoint: str | None, steps: int | None) -> float:
        endpoint = endpoint or ""
        steps = steps if steps and steps > 0 else _DEFAULT_STEPS
        if (endpoint, steps) in self._exact:
            return self._exact[(endpoint, steps)]
        per_step = self._per_step.get(endpoint)
        if per_step is None:
            per_step = STARTING_SECONDS_PER_STEP.get(endpoint, _OTHER_ENDPOINT)
        return per_step * steps

    async def refresh(self) -> None:
        """Learn from the database; on a database error keep what was known (and try
        again at the next refresh), since an estimate is never worth failing a poll."""
        self._loaded = time.monotonic()
        try:
            rows = await self.pool.fetch(_COMPLETED, self.samples)
        except DB_ERRORS as exc:
            log.warning("typical training durations not refreshed: %s", exc)
            return
        runs: dict[tuple[str, int], list[float]] = {}
        for row in rows:
            runs.setdefault((row["fal_endpoint"], row["steps"]), []).append(row["seconds"])
        self._exact = {
            key: statistics.median(seconds)
            for key, seconds in runs.items()
            if len(seconds) >= MIN_SAMPLES
        }
        rates: dict[str, list[float]] = {}
        for (endpoint, steps), seconds in runs.items():
            rates.setdefault(endpoint, []).extend(s / steps for s in seconds)
        self._per_step = {
            endpoint: statistics.median(rate)
            for endpoint, rate in rates.items()
            if len(rate) >= MIN_SAMPLES
        }
