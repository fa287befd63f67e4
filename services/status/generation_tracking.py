"""What FAL said about a generation, applied once, with its results stored first.

A completion is applied in two steps: the images are copied from FAL's expiring URLs into
the Object Store (idempotent: fixed names), then one transaction inserts the
`generated_images` rows (`ON CONFLICT DO NOTHING`), stamps `finished_at` (guarded by
`finished_at IS NULL`, so a webhook and a poll racing each other finish it once) and
queues `generation.completed` with an id derived from the request id. A crash between the
two steps only repeats the copy. Transient fetch failures raise `ResultsUnavailable`, and
the caller (webhook sweep, poller) tries again later; results that are gone fail the job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import asyncpg

from contracts import (
    FailureReason,
    GeneratedImage,
    GenerationCompleted,
    GenerationFailed,
    GenerationSubmitted,
    derived_event_id,
    utcnow,
)
from services.kit.consumer import Delivery
from services.kit.crashpoints import crashpoint
from services.kit.db import UnitOfWork
from services.status.images import ImageStore, ResultsLost, StoredImage
from services.status.metrics import StatusMetrics

log = logging.getLogger(__name__)
CONSUMER = "status-generation"
#: FAL's error types of a request that ran out of time (its docs, "Request Error Types").
TIMEOUT_TYPES = frozenset({"request_timeout", "startup_timeout"})

#: `$6`: the stored webhook the outcome comes from (if any), marked processed with it.
_FINISH = """
WITH mark AS (
    UPDATE fal_webhooks SET processed_at = now() WHERE id = $6 AND processed_at IS NULL
)
UPDATE generations SET fal_status = $3, fal_response_data = $4, error = $5,
    finished_at = now(), last_status_check = now(), next_poll_at = NULL
WHERE id = $1 AND fal_request_id = $2 AND finished_at IS NULL
RETURNING user_id, seed, submitted_at
"""
_INSERT_IMAGE = """
INSERT INTO generated_images (generation_id, user_id, position, object_name, width, height,
    content_type, nsfw)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (generation_id, position) DO NOTHING
"""


def failure_reason(error_type: str | None, payload: dict[str, Any] | None) -> FailureReason:
    """FAL's validation errors (422 `detail` list) are the input's fault; a request that ran
    out of time (`error_type` `request_timeout`, FAL's "Request Error Types") is a timeout;
    the rest is FAL's."""
    detail = (payload or {}).get("detail")
    if error_type == "validation_error" or isinstance(detail, list):
        return FailureReason.FAL_REJECTED_INPUT
    if error_type in TIMEOUT_TYPES:
        return FailureReason.TIMEOUT
    return FailureReason.FAL_ERROR


@dataclass
class GenerationTracker:
    pool: asyncpg.Pool
    images: ImageStore
    metrics: StatusMetrics

    async def on_submitted(self, event: GenerationSubmitted, delivery: Delivery) -> None:
        """Start tracking: due for a poll now (the lost-webhook fallback starts here)."""
        async with UnitOfWork(self.pool, "status") as uow:
            if not await uow.claim(CONSUMER, event.event_id):
                return
            await uow.conn.execute(
                "UPDATE generations SET fal_status = 'IN_QUEUE', next_poll_at = now(),"
                " poll_count = 0, last_status_check = now()"
                " WHERE id = $1 AND fal_request_id = $2 AND finished_at IS NULL"
                " AND fal_status IS NULL",
                event.generation_id,
                event.request_id,
            )

    async def progress(self, request_id: str, fal_status: str) -> None:
        await self.pool.execute(
            "UPDATE generations SET fal_status = $2, last_status_check = now()"
            " WHERE fal_request_id = $1 AND finished_at IS NULL",
            request_id,
            fal_status,
        )

    async def finish(
        self,
        request_id: str,
        *,
        ok: bool,
        payload: dict[str, Any] | None,
        error: str | None,
        response: dict[str, Any],
        error_type: str | None = None,
        webhook_id: int | None = None,
    ) -> bool:
        """Apply a final outcome once; False when already applied or unknown. `response`:
        FAL's whole answer, kept as `fal_response_data` (the webhook body, or the polled
        status and result). `webhook_id`: the stored webhook it comes from, marked processed
        in the applying transaction."""
        row = await self.pool.fetchrow(
            "SELECT id::text AS id, finished_at FROM generations WHERE fal_request_id = $1",
            request_id,
        )
        if row is None or row["finished_at"] is not None:
            return False
        generation_id: str = row["id"]
        stored: list[StoredImage] = []
        reason = failure_reason(error_type, payload)
        fal_status = "COMPLETED" if ok else "ERROR"  # what FAL said, whatever we make of it
        lost = False
        if ok:
            try:
                stored = await self.images.save_all(generation_id, payload or {})
            except ResultsLost as exc:
                ok, lost, error, reason = False, True, str(exc), FailureReason.FAL_ERROR
        async with UnitOfWork(self.pool, "status") as uow:
            done = await uow.conn.fetchrow(
                _FINISH, generation_id, request_id, fal_status, response, error, webhook_id
            )
            if done is None:
                return False
            if ok:
                await uow.conn.executemany(
                    _INSERT_IMAGE,
                    [
                        (
                            generation_id,
                            done["user_id"],
                            i.position,
                            i.object_name,
                            i.width,
                            i.height,
                            i.content_type,
                            i.nsfw,
                        )
                        for i in stored
                    ],
                )
                uow.publish(self._completed(generation_id, request_id, done, payload, stored))
            else:
                uow.publish(
                    GenerationFailed(
                        event_id=derived_event_id("generation.failed", request_id),
                        occurred_at=utcnow(),
                        generation_id=generation_id,
                        user_id=done["user_id"],
                        reason=reason,
                        request_id=request_id,
                        detail=(error or "")[:200] or None,
                    )
                )
            crashpoint("status.before_generation_finish_commit")
        self._observe("completed" if ok else ("lost" if lost else "failed"), stored, done)
        log.info(
            "generation %s",
            "completed" if ok else "failed",
            extra={"generation_id": generation_id, "request_id": request_id},
        )
        return True

    @staticmethod
    def _completed(
        generation_id: str,
        request_id: str,
        done: asyncpg.Record,
        payload: dict[str, Any] | None,
        stored: list[StoredImage],
    ) -> GenerationCompleted:
        seed = (payload or {}).get("seed")
        return GenerationCompleted(
            event_id=derived_event_id("generation.completed", request_id),
            occurred_at=utcnow(),
            generation_id=generation_id,
            user_id=done["user_id"],
            request_id=request_id,
            images=tuple(
                GeneratedImage(
                    object_name=i.object_name,
                    width=i.width,
                    height=i.height,
                    content_type=i.content_type,
                    nsfw=i.nsfw,
                )
                for i in stored
            ),
            seed=seed if isinstance(seed, int) else done["seed"],
        )

    def _observe(self, outcome: str, stored: list[StoredImage], done: asyncpg.Record) -> None:
        self.metrics.generations_finished.labels(outcome).inc()
        for image in stored:
            self.metrics.generated_images.labels("true" if image.nsfw else "false").inc()
        if done["submitted_at"] is not None:
            elapsed = (utcnow() - done["submitted_at"]).total_seconds()
            self.metrics.generation_seconds.observe(elapsed)
