"""What FAL said, applied to the avatar monotonically, with the events it causes.

Every change is one transaction over the status-owned columns plus the outbox. Updates
are guarded so a late, duplicate or out-of-order report changes nothing: an attempt
finishes once, progress never goes down, and an older attempt never overwrites a newer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from nats.js.kv import KeyValue

from contracts import (
    FailureReason,
    TrainingCancelled,
    TrainingCompleted,
    TrainingFailed,
    TrainingProgress,
    TrainingSubmitted,
    derived_event_id,
    utcnow,
)
from services.kit.consumer import Delivery
from services.kit.crashpoints import crashpoint
from services.kit.db import UnitOfWork
from services.status.metrics import StatusMetrics

log = logging.getLogger(__name__)
CONSUMER = "status-training"

_FINISH = """
UPDATE avatars SET fal_status = $3, training_progress = CASE WHEN $4 THEN 100
    ELSE training_progress END, training_error = $5, fal_response_data = $6,
    diffusers_lora_file_url = $7, config_file_url = $8, training_finished_at = now(),
    last_status_check = now(), tracked_attempt = submitted_attempt, queue_position = NULL,
    training_logs = coalesce($9, training_logs)
WHERE id = $1 AND fal_request_id = $2
  AND (training_finished_at IS NULL OR tracked_attempt IS DISTINCT FROM submitted_attempt)
RETURNING user_id, submitted_attempt, training_type, training_started_at, submitted_at
"""


class StatusCache(msgspec.Struct, frozen=True):
    """What the KV cache holds per avatar: enough to show status without a DB query."""

    avatar_id: str
    fal_status: str
    progress: int
    queue_position: int | None
    updated_at: datetime


@dataclass
class Tracker:
    pool: asyncpg.Pool
    cache: KeyValue
    metrics: StatusMetrics

    async def on_submitted(self, event: TrainingSubmitted, delivery: Delivery) -> None:
        """Start tracking a new attempt: reset what FAL said about the previous one."""
        async with UnitOfWork(self.pool, "status") as uow:
            if not await uow.claim(CONSUMER, event.event_id):
                return
            await uow.conn.execute(
                "UPDATE avatars SET tracked_attempt = $2, fal_status = 'IN_QUEUE',"
                " training_progress = 0, queue_position = NULL, training_error = NULL,"
                " training_logs = NULL, diffusers_lora_file_url = NULL, config_file_url = NULL,"
                " fal_response_data = NULL, training_started_at = NULL,"
                " training_finished_at = NULL, poll_count = 0, next_poll_at = now()"
                " WHERE id = $1 AND (tracked_attempt IS NULL OR tracked_attempt < $2)",
                event.avatar_id,
                event.attempt,
            )
        await self._cache(event.avatar_id, "IN_QUEUE", 0, None)

    async def on_cancelled(self, event: TrainingCancelled, delivery: Delivery) -> None:
        """Stop tracking a cancelled attempt (FAL sends no webhook for a cancelled job)."""
        async with UnitOfWork(self.pool, "status") as uow:
            if not await uow.claim(CONSUMER, event.event_id):
                return
            kind = await uow.conn.fetchval(
                "UPDATE avatars SET fal_status = 'CANCELLED', training_finished_at = now(),"
                " tracked_attempt = $2, queue_position = NULL, last_status_check = now()"
                " WHERE id = $1 AND submitted_attempt = $2 AND (training_finished_at IS NULL"
                " OR tracked_attempt IS DISTINCT FROM $2) RETURNING training_type::text",
                event.avatar_id,
                event.attempt,
            )
        if kind is not None:
            self.metrics.trainings_finished.labels(kind, "cancelled").inc()
        await self._cache(event.avatar_id, "CANCELLED", 0, None)

    async def progress(
        self,
        request_id: str,
        fal_status: str,
        progress: int,
        queue_position: int | None,
        logs: str | None,
        response: dict[str, Any],
    ) -> None:
        async with UnitOfWork(self.pool, "status") as uow:
            row = await uow.conn.fetchrow(
                "UPDATE avatars SET fal_status = $2, training_progress ="
                " greatest(training_progress, $3), queue_position = $4,"
                " training_logs = coalesce($5, training_logs), fal_response_data = $6,"
                " last_status_check = now(), poll_count = 0,"  # backoff counts failures only
                " training_started_at = CASE WHEN $2 = 'IN_PROGRESS'"
                " THEN coalesce(training_started_at, now()) ELSE training_started_at END"
                " WHERE fal_request_id = $1 AND training_finished_at IS NULL"
                " AND tracked_attempt = submitted_attempt"
                " RETURNING id, user_id, tracked_attempt, training_progress, training_started_at",
                request_id,
                fal_status,
                progress,
                queue_position,
                logs,
                response,
            )
            if row is None:
                return
            eta = _eta(row["training_started_at"], row["training_progress"])
            uow.publish(
                TrainingProgress(
                    event_id=derived_event_id(
                        "training.progress",
                        request_id,
                        fal_status,
                        row["training_progress"],
                        queue_position,
                    ),
                    occurred_at=utcnow(),
                    avatar_id=str(row["id"]),
                    user_id=row["user_id"],
                    attempt=row["tracked_attempt"],
                    request_id=request_id,
                    fal_status=fal_status,
                    progress=row["training_progress"],
                    queue_position=queue_position,
                    eta_seconds=eta,
                )
            )
        await self._cache(str(row["id"]), fal_status, row["training_progress"], queue_position)

    async def finish(
        self,
        request_id: str,
        *,
        ok: bool,
        payload: dict[str, Any] | None,
        error: str | None,
        logs: str | None = None,
    ) -> bool:
        """Apply a final outcome once; returns False when it was already applied (or unknown)."""
        lora = _url(payload, "diffusers_lora_file") if ok else None
        config = _url(payload, "config_file") if ok else None
        if ok and lora is None:
            ok, error = False, "FAL result has no LoRA file"
        status = "COMPLETED" if ok else "ERROR"
        async with UnitOfWork(self.pool, "status") as uow:
            avatar_id = await uow.conn.fetchval(
                "SELECT id FROM avatars WHERE fal_request_id = $1", request_id
            )
            if avatar_id is None:
                return False
            row = await uow.conn.fetchrow(
                _FINISH, avatar_id, request_id, status, ok, error, payload or {}, lora, config, logs
            )
            if row is None:
                return False
            common = {
                "occurred_at": utcnow(),
                "avatar_id": str(avatar_id),
                "user_id": row["user_id"],
                "attempt": row["submitted_attempt"],
                "request_id": request_id,
            }
            if ok:
                assert lora is not None
                uow.publish(
                    TrainingCompleted(
                        event_id=derived_event_id("training.completed", request_id),
                        lora_url=lora,
                        config_url=config,
                        **common,
                    )
                )
            else:
                uow.publish(
                    TrainingFailed(
                        event_id=derived_event_id("training.failed", request_id),
                        reason=FailureReason.FAL_ERROR,
                        retryable=True,
                        detail=(error or "")[:200],
                        **common,
                    )
                )
            crashpoint("status.before_finish_commit")
        outcome = "completed" if ok else "failed"
        self.metrics.trainings_finished.labels(row["training_type"], outcome).inc()
        started = row["training_started_at"] or row["submitted_at"]
        if started is not None:
            self.metrics.training_seconds.labels(row["training_type"]).observe(
                (utcnow() - started).total_seconds()
            )
        await self._cache(str(avatar_id), status, 100 if ok else 0, None)
        log.info(
            "training %s", outcome, extra={"avatar_id": str(avatar_id), "request_id": request_id}
        )
        return True

    async def _cache(
        self, avatar_id: str, fal_status: str, progress: int, queue_position: int | None
    ) -> None:
        value = StatusCache(avatar_id, fal_status, progress, queue_position, utcnow())
        try:
            await self.cache.put(avatar_id, msgspec.json.encode(value))
        except Exception as exc:  # noqa: BLE001 - the cache is an optimisation, never a failure
            log.warning("status cache write failed: %s", exc)


def _url(payload: dict[str, Any] | None, key: str) -> str | None:
    value = (payload or {}).get(key)
    if isinstance(value, dict) and isinstance(value.get("url"), str):
        return str(value["url"])
    return None


def _eta(started: datetime | None, progress: int) -> int | None:
    if started is None or progress <= 0:
        return None
    elapsed = (utcnow() - started).total_seconds()
    return max(0, int(elapsed * (100 - progress) / progress))
