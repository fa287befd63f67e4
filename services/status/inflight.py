"""Gauges of the jobs FAL holds for us, for the "stuck training" alert and the dashboard.

Counters cannot tell that something has *not* happened: a training submitted an hour ago
with no webhook and no successful poll is invisible in rates. These gauges come from the
database, so every status replica reports the same system-wide value (dashboards and
alerts take `max` over replicas), refreshed every `interval` seconds.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from contracts import TrainingType
from services.kit.waiting import pause
from services.status.metrics import StatusMetrics

log = logging.getLogger(__name__)

_TRAININGS = """
SELECT training_type::text AS training_type, count(*) AS jobs,
       coalesce(extract(epoch FROM now() - min(submitted_at)), 0)::float8 AS oldest
FROM avatars
WHERE fal_request_id IS NOT NULL AND submitted_at IS NOT NULL AND training_finished_at IS NULL
GROUP BY training_type
"""


class InFlightGauges:
    def __init__(self, pool: asyncpg.Pool, metrics: StatusMetrics, interval: float = 15.0):
        self.pool = pool
        self.metrics = metrics
        self.interval = interval

    async def refresh(self) -> None:
        rows = await self.pool.fetch(_TRAININGS)
        seen = {r["training_type"]: r for r in rows}
        for kind in TrainingType:  # zero series too, so "absent" never hides a real zero
            row = seen.get(kind.value)
            self.metrics.trainings_in_flight.labels(kind.value).set(row["jobs"] if row else 0)
        oldest = max((float(r["oldest"]) for r in rows), default=0.0)
        self.metrics.training_oldest_seconds.set(oldest)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("in-flight gauges not refreshed: %s", exc)
            await pause(stop, self.interval)
