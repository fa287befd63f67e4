"""Pruning `fal_webhooks`: FAL's webhook bodies are kept only while they are of use.

A row is needed while it is unapplied (the sweep applies it; an orphan's waits up to
`ORPHAN_TTL_SECONDS`, 3 h, for the trainer to adopt its request id by key) and, applied,
for a while as the replay guard and for support. Its body holds FAL's result URLs (a
user's pictures, LoRA files) and a generation's prompt, so applied rows received more than
`STATUS_WEBHOOK_RETENTION_HOURS` (72) ago are deleted. Unapplied rows are never deleted
here, however old: they are work not done yet (or a poison record to look at).

How, without an index on `received_at` for applied rows: rows are walked in primary-key
order, oldest first (`id` is a sequence, so it grows with `received_at` up to a few
milliseconds of commit order), one batch of `batch` rows at a time. Applied rows of the
batch past the retention are deleted (`DELETE ... WHERE id IN (...)`); the walk ends at the
first batch that reaches a row inside the retention (a row a little out of order is caught
on a later run). A run therefore reads what it deletes, the few old unapplied rows, and
one batch more. Every replica may run it: a row deleted twice is deleted once.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.kit.config import ConfigError, Env
from services.kit.waiting import pause

log = logging.getLogger(__name__)

#: Below this a replayed or late webhook (FAL retries for ~2 h), an orphan waiting for its
#: trainer (3 h) or the trainer's own reconcile window (~105 min) could lose its record.
MIN_RETENTION_HOURS = 6.0
INTERVAL_SECONDS = 600.0
BATCH = 1000

# $1 the last id already walked past, $2 the batch size, $3 the retention in hours.
_PRUNE_BATCH = """
WITH head AS (
    SELECT id, received_at < now() - make_interval(secs => $3 * 3600) AS old,
        processed_at IS NOT NULL AS applied
    FROM fal_webhooks WHERE id > $1 ORDER BY id LIMIT $2
),
gone AS (
    DELETE FROM fal_webhooks WHERE id IN (SELECT id FROM head WHERE old AND applied)
    RETURNING id
)
SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT count(*) FROM head) AS seen,
    (SELECT max(id) FROM head) AS last, coalesce((SELECT bool_and(old) FROM head), false)
    AS all_old
"""


def retention_hours(env: Env) -> float:
    """`STATUS_WEBHOOK_RETENTION_HOURS` (72), at least `MIN_RETENTION_HOURS`."""
    hours = env.number("STATUS_WEBHOOK_RETENTION_HOURS", 72.0)
    if hours < MIN_RETENTION_HOURS:
        raise ConfigError(
            f"STATUS_WEBHOOK_RETENTION_HOURS: expected a number >= {MIN_RETENTION_HOURS:g},"
            f" got {hours:g}"
        )
    return hours


class WebhookRetention:
    """Deletes applied `fal_webhooks` rows older than the retention, every `interval`."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        retention_hours: float,
        interval: float = INTERVAL_SECONDS,
        batch: int = BATCH,
    ):
        self.pool = pool
        self.retention_hours = retention_hours
        self.interval = interval
        self.batch = batch

    async def prune_once(self) -> int:
        """One walk from the oldest row; returns how many rows were deleted."""
        deleted, after = 0, 0
        while True:
            row = await self.pool.fetchrow(
                _PRUNE_BATCH, after, self.batch, float(self.retention_hours)
            )
            deleted += int(row["deleted"])
            if row["seen"] < self.batch or not row["all_old"]:
                break
            after = int(row["last"])
        if deleted:
            log.info("pruned %d applied FAL webhooks", deleted)
        return deleted

    async def run(self, stop: asyncio.Event) -> None:
        """Prune now and every `interval` until `stop`; a failed run waits for the next."""
        while not stop.is_set():
            try:
                await self.prune_once()
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("pruning FAL webhooks failed: %s", exc)
            await pause(stop, self.interval)
