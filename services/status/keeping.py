"""What a finished training leaves behind, kept: our copy of the LoRA, and FAL's logs.

FAL deletes its files at the lifetime they were given (docs/reliability.md, "Files and
lifetimes"), so the LoRA and its config file are copied into the Object Store
(`services.kit.loras`) as soon as the training ends; the trainer re-uploads that copy
when FAL's is gone. A training finished by its webhook has no logs unless a poll fetched
them while it ran (a webhook carries none), so its status is read once with `logs=true`.

Both steps run off the row, not off the finishing request: `Tracker.finish*` restart
`next_poll_at`/`poll_count`, and this loop claims finished rows still missing either
(index `ix_avatars_files_due`) with `FOR UPDATE SKIP LOCKED`, so a crash only repeats a
step (fixed object names: a repeat overwrites) and replicas share the work. A failed step
backs off exponentially and is given up after `MAX_TRIES`; a status read spends the same
per-replica FAL budget as the poller's. It is its own task, so copying a large file never
holds up polling.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg
import fal_client
import httpx

from services.kit import loras
from services.kit.db import DB_ERRORS
from services.kit.falmetrics import read_status
from services.kit.logs import log_context
from services.kit.waiting import pause
from services.status.images import ImageStore, ResultsLost, ResultsUnavailable
from services.status.metrics import StatusMetrics
from services.status.poller import TokenBucket
from services.status.progress import format_logs

log = logging.getLogger(__name__)

#: Tries per finished training before it is given up (backing off 2^n × interval).
MAX_TRIES = 6
#: FAL keeps a request's status and result about an hour after it completes (docs:
#: inference-api/queue/result); logs are not asked for after that.
LOGS_HORIZON_SECONDS = 3600

_CLAIM = """
WITH due AS (
    SELECT id FROM avatars
    WHERE training_finished_at IS NOT NULL AND fal_status IN ('COMPLETED', 'ERROR')
      AND (training_logs IS NULL OR (fal_status = 'COMPLETED' AND lora_object_key IS NULL))
      AND (next_poll_at IS NULL OR next_poll_at <= now()) AND poll_count < $3
    ORDER BY next_poll_at NULLS FIRST LIMIT $1 FOR UPDATE SKIP LOCKED
)
UPDATE avatars a SET poll_count = a.poll_count + 1,
    next_poll_at = now() + make_interval(secs => $2 * 2 ^ least(a.poll_count, 8))
FROM due WHERE a.id = due.id
RETURNING a.id, a.fal_request_id, a.fal_endpoint, a.tracked_attempt,
    a.training_logs IS NULL AND a.fal_request_id IS NOT NULL AND a.fal_endpoint IS NOT NULL
        AND a.training_finished_at > now() - make_interval(secs => $4) AS wants_logs,
    a.fal_status = 'COMPLETED' AND a.lora_object_key IS NULL
        AND a.diffusers_lora_file_url IS NOT NULL AS wants_lora,
    a.diffusers_lora_file_url, a.config_file_url
"""
_KEEP = """
UPDATE avatars SET training_logs = coalesce(training_logs, $3),
    lora_object_key = coalesce($4, lora_object_key)
WHERE id = $1 AND tracked_attempt IS NOT DISTINCT FROM $2
"""


@dataclass
class TrainingFiles:
    pool: asyncpg.Pool
    store: ImageStore
    fal: fal_client.AsyncClient
    budget: TokenBucket
    metrics: StatusMetrics
    interval: float
    batch: int = 10

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                kept = await self.keep_once()
            except DB_ERRORS as exc:
                log.warning("training files step failed: %s", exc)
                kept = 0
            if kept < self.batch:
                await pause(stop, min(1.0, self.interval))

    async def keep_once(self) -> int:
        """One batch of finished trainings; returns how many were looked at."""
        rows = await self.pool.fetch(
            _CLAIM, self.batch, self.interval, MAX_TRIES, float(LOGS_HORIZON_SECONDS)
        )
        for row in rows:
            with log_context(avatar_id=str(row["id"]), request_id=row["fal_request_id"]):
                await self._keep(row)
        return len(rows)

    async def _keep(self, row: asyncpg.Record) -> None:
        logs = await self._logs(row) if row["wants_logs"] else None
        key = await self._copy(row) if row["wants_lora"] else None
        if logs is not None or key is not None:
            await self.pool.execute(_KEEP, row["id"], row["tracked_attempt"], logs, key)

    async def _logs(self, row: asyncpg.Record) -> str | None:
        """The finished job's logs as text ('' when FAL kept none); None when unreadable."""
        await self.budget.take()
        try:
            status, _ = await read_status(
                self.fal, row["fal_endpoint"], row["fal_request_id"], with_logs=True
            )
        except (fal_client.client.FalClientError, httpx.HTTPError, OSError) as exc:
            self._failed("logs", exc)
            return None
        except (ValueError, KeyError, TypeError) as exc:  # an answer fal-client cannot read
            self._failed("logs", exc)
            return None
        entries: Any = getattr(status, "logs", None)
        self.metrics.training_files.labels("logs", "ok").inc()
        return format_logs(entries or [])

    async def _copy(self, row: asyncpg.Record) -> str | None:
        """Our copy of the LoRA and its config; the weights' name, or None when not copied."""
        weights = loras.weights_name(str(row["id"]), row["tracked_attempt"] or 0)
        try:
            await self.store.copy(row["diffusers_lora_file_url"], weights)
            if row["config_file_url"]:
                await self.store.copy(row["config_file_url"], loras.config_name(weights))
        except ResultsLost as exc:
            log.error("FAL no longer has the trained LoRA; no copy was kept: %s", exc)
            self.metrics.training_files.labels("lora", "gone").inc()
            return None
        except ResultsUnavailable as exc:
            self._failed("lora", exc)
            return None
        self.metrics.training_files.labels("lora", "ok").inc()
        return weights

    def _failed(self, kind: str, exc: Exception) -> None:
        log.warning("training %s not kept yet: %s", kind, exc)
        self.metrics.training_files.labels(kind, "error").inc()
