"""What FAL said, applied to the avatar monotonically, with the events it causes.

Every change is one transaction over the status-owned columns plus the outbox. Updates
are guarded so a late, duplicate or out-of-order report changes nothing: an attempt
finishes once, progress never goes down, and an older attempt never overwrites a newer.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

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
from contracts.base import encode
from services.kit.consumer import Delivery
from services.kit.crashpoints import crashpoint
from services.kit.db import OUTBOX_CHANNEL, UnitOfWork
from services.kit.outbox import OutboxShortcut
from services.status.metrics import StatusMetrics

log = logging.getLogger(__name__)
CONSUMER = "status-training"
PRODUCER = "status"

#: The final outcome from the poller, or from a recorded webhook (`$9`, marked processed in
#: the same statement: a data-modifying CTE always runs, whether the avatar changes or not).
#: Neither finishes a job the user cancelled (its ledger row `cancelled`, marked before FAL
#: was asked): a 499, or a run FAL let finish, is not the training's outcome — the
#: `TrainingCancelled` event is (`on_cancelled`); docs/fal-outcomes.md.
#: `$5` is FAL's whole answer: the webhook body, or `{"status": ..., "result": ...}` polled.
#: `next_poll_at`/`poll_count` restart for the files step (`keeping.py`): the LoRA copied
#: into our storage and, when no poll brought them, the logs fetched once.
_FINISH = """
WITH mark AS (
    UPDATE fal_webhooks SET processed_at = now() WHERE id = $9 AND processed_at IS NULL
)
UPDATE avatars SET fal_status = $2, training_progress = CASE WHEN $3 THEN 100
    ELSE training_progress END, training_error = $4, fal_response_data = $5,
    diffusers_lora_file_url = $6, config_file_url = $7, training_finished_at = now(),
    last_status_check = now(), tracked_attempt = submitted_attempt, queue_position = NULL,
    training_logs = coalesce($8, training_logs), next_poll_at = now(), poll_count = 0
WHERE fal_request_id = $1
  AND (training_finished_at IS NULL OR tracked_attempt IS DISTINCT FROM submitted_attempt)
  AND NOT EXISTS (SELECT 1 FROM fal_submissions WHERE request_id = $1 AND state = 'cancelled')
RETURNING id, user_id, submitted_attempt, training_type::text AS training_type,
    training_started_at, submitted_at
"""

#: A webhook in ONE statement (its own transaction): for the training that owns the request
#: id, apply the end state, store the delivery already processed, queue the event and wake
#: the relay — or, when it finishes nothing, say why, so the caller can take the careful path.
#: Everything hangs off `fin`, the guarded UPDATE: it matches only if this delivery finishes
#: the attempt — not finished yet, and this delivery not stored before. Concurrent copies of
#: a delivery serialize on the avatar's row lock and the loser re-checks the guard on the
#: committed row, so an attempt finishes once and one copy at most is stored here; a delivery
#: that matches nothing is recorded under the advisory lock by the caller (`WebhookReceiver`).
#: The caller encodes the event with stand-ins for the three ids only the avatar row knows
#: (`_FROM_THE_ROW`); the statement writes them in, so the stored bytes are exactly what
#: `encode` makes of the finished event (`/delete_me` finds a user's rows by those bytes).
#: Each stand-in is replaced with its key, and `"key":` cannot occur inside a JSON string
#: (its quotes would be escaped), so nothing else is touched. The body is the text FAL sent
#: (`$3`), not decoded and re-encoded, and it is also `fal_response_data`: FAL's whole
#: answer, fields we do not read included. The relay is woken (`$15`) unless the
#: caller publishes the event itself once this commits (`OutboxShortcut`).
_FINISH_DELIVERY = """
WITH doc AS (SELECT $3::text::jsonb AS body),
stored AS (
    SELECT EXISTS (SELECT 1 FROM fal_webhooks WHERE request_id = $1 AND fal_timestamp = $2)
        AS yes
),
fin AS (
    UPDATE avatars SET fal_status = $5, training_progress = CASE WHEN $6 THEN 100
        ELSE training_progress END, training_error = $7,
        fal_response_data = (SELECT body FROM doc),
        diffusers_lora_file_url = $8, config_file_url = $9, training_finished_at = now(),
        last_status_check = now(), tracked_attempt = submitted_attempt, queue_position = NULL,
        next_poll_at = now(), poll_count = 0
    WHERE fal_request_id = $1 AND NOT (SELECT yes FROM stored)
      AND (training_finished_at IS NULL OR tracked_attempt IS DISTINCT FROM submitted_attempt)
      AND NOT EXISTS (SELECT 1 FROM fal_submissions WHERE request_id = $1
        AND state = 'cancelled')
    RETURNING id, user_id, submitted_attempt, training_type::text AS training_type,
        training_started_at, submitted_at
),
hook AS (
    INSERT INTO fal_webhooks (request_id, fal_timestamp, body, idempotency_key, processed_at)
    SELECT $1, $2, doc.body, $4, now() FROM doc, fin
    RETURNING id
),
queued AS (
    INSERT INTO outbox (id, producer, subject, payload)
    SELECT $10, $11, $12, convert_to(replace(replace(replace($13,
        '"avatar_id":""', '"avatar_id":"' || fin.id::text || '"'),
        '"user_id":-1', '"user_id":' || fin.user_id::text),
        '"attempt":-1', '"attempt":' || coalesce(fin.submitted_attempt::text, 'null')), 'UTF8')
    FROM fin
    ON CONFLICT (id) DO NOTHING
)
SELECT fin.*, (SELECT id FROM hook) AS webhook_id, (SELECT yes FROM stored) AS stored,
    EXISTS (SELECT 1 FROM generations WHERE fal_request_id = $1) AS generation,
    CASE WHEN $15 AND fin.id IS NOT NULL THEN pg_notify($14, $11) END AS woke
FROM (VALUES (1)) AS one (x) LEFT JOIN fin ON true
"""


@dataclass(frozen=True)
class KnownTraining:
    """What a webhook's event needs from the avatar that owns the request id."""

    avatar_id: str
    user_id: int
    attempt: int


#: Stands in for the avatar's ids in the event `_FINISH_DELIVERY` completes (it replaces
#: `"avatar_id":""`, `"user_id":-1` and `"attempt":-1` in the encoded event).
_FROM_THE_ROW = KnownTraining("", -1, -1)


@dataclass(frozen=True)
class Webhook:
    """One verified delivery as it is stored: FAL's timestamp, the body FAL sent, our key."""

    request_id: str
    timestamp: int
    body: str
    key: str | None


@dataclass(frozen=True)
class Finished:
    """What `finish_delivery` did: stored and applied it (`webhook_id`), or neither — then
    whether this delivery is stored already and whether a generation owns the request id."""

    webhook_id: int | None
    stored: bool = False
    generation: bool = False


@dataclass
class Tracker:
    pool: asyncpg.Pool
    metrics: StatusMetrics
    #: Publishes a webhook's event as soon as it commits (else the relay, woken, does).
    shortcut: OutboxShortcut | None = None

    async def on_submitted(self, event: TrainingSubmitted, delivery: Delivery) -> None:
        """Start tracking a new attempt: reset what FAL said about the previous one."""
        async with UnitOfWork(self.pool, PRODUCER) as uow:
            if not await uow.claim(CONSUMER, event.event_id):
                return
            await uow.conn.execute(
                "UPDATE avatars SET tracked_attempt = $2, fal_status = 'IN_QUEUE',"
                " training_progress = 0, queue_position = NULL, training_error = NULL,"
                " training_logs = NULL, diffusers_lora_file_url = NULL, config_file_url = NULL,"
                " fal_response_data = NULL, training_started_at = NULL, lora_object_key = NULL,"
                " training_finished_at = NULL, poll_count = 0, next_poll_at = now()"
                " WHERE id = $1 AND (tracked_attempt IS NULL OR tracked_attempt < $2)",
                event.avatar_id,
                event.attempt,
            )

    async def on_cancelled(self, event: TrainingCancelled, delivery: Delivery) -> None:
        """Stop tracking a cancelled attempt (whether FAL sends a webhook for it is
        undocumented; one that comes finishes nothing, see `_FINISH`)."""
        async with UnitOfWork(self.pool, PRODUCER) as uow:
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

    async def progress(
        self,
        request_id: str,
        fal_status: str,
        progress: int,
        queue_position: int | None,
        logs: str | None,
        response: dict[str, Any],
        *,
        estimated: bool = False,
        eta_seconds: int | None = None,
    ) -> None:
        """What a poll saw while the job is not finished. `estimated`: `progress` comes
        from time, not from FAL's logs (its `eta_seconds` is then the estimate's own)."""
        async with UnitOfWork(self.pool, PRODUCER) as uow:
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
            eta = (
                eta_seconds
                if estimated
                else _eta(row["training_started_at"], row["training_progress"])
            )
            uow.publish(
                TrainingProgress(
                    event_id=derived_event_id(
                        "training.progress",
                        request_id,
                        fal_status,
                        row["training_progress"],
                        queue_position,
                        estimated,
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
                    estimated=estimated,
                )
            )

    async def finish(
        self,
        request_id: str,
        *,
        ok: bool,
        payload: dict[str, Any] | None,
        error: str | None,
        response: dict[str, Any],
        logs: str | None = None,
        webhook_id: int | None = None,
    ) -> bool:
        """Apply a final outcome once; returns False when it was already applied (or unknown).

        `response`: FAL's whole answer, stored as `fal_response_data` (the webhook body, or
        the polled status and result). `webhook_id`: the stored webhook this outcome comes
        from, marked processed in the same transaction (whatever the outcome)."""
        outcome = _Outcome.of(ok, payload, error)
        async with UnitOfWork(self.pool, PRODUCER) as uow:
            row = await uow.conn.fetchrow(
                _FINISH,
                request_id,
                outcome.fal_status,
                outcome.ok,
                outcome.error,
                response,
                outcome.lora,
                outcome.config,
                logs,
                webhook_id,
            )
            if row is None:
                return False
            avatar = KnownTraining(str(row["id"]), row["user_id"], row["submitted_attempt"])
            uow.publish(outcome.event(request_id, avatar))
            crashpoint("status.before_finish_commit")
        await self._finished(request_id, avatar, outcome, row)
        return True

    async def finish_delivery(
        self,
        webhook: Webhook,
        *,
        ok: bool,
        payload: dict[str, Any] | None,
        error: str | None,
    ) -> Finished:
        """Store a webhook and apply its outcome to the training it finishes, in one
        statement; when it finishes none, nothing is written (see `Finished`)."""
        outcome = _Outcome.of(ok, payload, error)
        event = outcome.event(webhook.request_id, _FROM_THE_ROW)
        crashpoint("status.before_finish_commit")  # the statement is the transaction
        row = await self.pool.fetchrow(
            _FINISH_DELIVERY,
            webhook.request_id,
            webhook.timestamp,
            webhook.body,
            webhook.key,
            outcome.fal_status,
            outcome.ok,
            outcome.error,
            outcome.lora,
            outcome.config,
            UUID(event.event_id),
            PRODUCER,
            event.subject,
            encode(event).decode(),
            OUTBOX_CHANNEL,
            self.shortcut is None,
        )
        if row["id"] is None:
            return Finished(None, row["stored"], row["generation"])
        avatar = KnownTraining(str(row["id"]), row["user_id"], row["submitted_attempt"])
        event = msgspec.structs.replace(
            event, avatar_id=avatar.avatar_id, user_id=avatar.user_id, attempt=avatar.attempt
        )
        if self.shortcut is not None:
            await self.shortcut.publish(event)
        await self._finished(webhook.request_id, avatar, outcome, row)
        return Finished(row["webhook_id"])

    async def _finished(
        self, request_id: str, avatar: KnownTraining, outcome: _Outcome, row: asyncpg.Record
    ) -> None:
        """After the commit: metrics and the log line."""
        # Let the NATS client's flusher send what is queued (the event a shortcut published)
        # before the bookkeeping below, not after the whole request.
        await asyncio.sleep(0)
        label = "completed" if outcome.ok else "failed"
        self.metrics.trainings_finished.labels(row["training_type"], label).inc()
        started = row["training_started_at"] or row["submitted_at"]
        if started is not None:
            self.metrics.training_seconds.labels(row["training_type"]).observe(
                (utcnow() - started).total_seconds()
            )
        log.info(
            "training %s", label, extra={"avatar_id": avatar.avatar_id, "request_id": request_id}
        )


@dataclass(frozen=True)
class _Outcome:
    """A final FAL outcome as we apply it: success needs the LoRA file."""

    ok: bool
    error: str | None
    lora: str | None
    config: str | None

    @classmethod
    def of(cls, ok: bool, payload: dict[str, Any] | None, error: str | None) -> _Outcome:
        lora = _url(payload, "diffusers_lora_file") if ok else None
        config = _url(payload, "config_file") if ok else None
        if ok and lora is None:
            ok, error = False, "FAL result has no LoRA file"
        return cls(ok, error, lora, config)

    @property
    def fal_status(self) -> str:
        return "COMPLETED" if self.ok else "ERROR"

    def event(self, request_id: str, avatar: KnownTraining) -> TrainingCompleted | TrainingFailed:
        about: dict[str, Any] = {
            "occurred_at": utcnow(),
            "avatar_id": avatar.avatar_id,
            "user_id": avatar.user_id,
            "attempt": avatar.attempt,
            "request_id": request_id,
        }
        if self.ok:
            assert self.lora is not None
            return TrainingCompleted(
                event_id=derived_event_id("training.completed", request_id),
                **about,
                lora_url=self.lora,
                config_url=self.config,
            )
        return TrainingFailed(
            event_id=derived_event_id("training.failed", request_id),
            **about,
            reason=FailureReason.FAL_ERROR,
            retryable=True,
            detail=(self.error or "")[:200],
        )


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
