"""Training submission: one FAL job per (avatar, attempt), whatever crashes or redeliveries.

The `fal_submissions` ledger is the idempotency key store. A row is committed in state
`submitting` *before* FAL is called; the answer is committed with the avatar's trainer
columns and the `training.submitted` event in one transaction. If the process dies in
between, the redelivered request finds `submitting` and does not submit again: it waits
for FAL's webhook (the webhook URL carries the idempotency key, so the status service
can adopt the orphan job) and only gives up, telling the user, after a reconcile window.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from nats.js.object_store import ObjectStore

from contracts import (
    FailureReason,
    TrainingCancelled,
    TrainingCancelRequested,
    TrainingFailed,
    TrainingRequested,
    TrainingSubmitted,
    derived_event_id,
    utcnow,
)
from services.kit.consumer import Delivery
from services.kit.db import UnitOfWork
from services.trainer.archive import build_archive
from services.trainer.config import TrainerConfig
from services.trainer.fal_gateway import FalGateway, FalRejected, FalRetryable
from services.trainer.metrics import TrainerMetrics
from services.trainer.presets import TrainingPlan, plan_training
from services.trainer.spend import spent_last_day

log = logging.getLogger(__name__)
CONSUMER = "trainer-avatar"
RECONCILE_WINDOW = timedelta(minutes=10)


class TryLater(Exception):
    """Not now (limits, or an unfinished earlier attempt): the consumer naks with backoff."""


def idempotency_key(avatar_id: str, attempt: int) -> str:
    return f"training:{avatar_id}:{attempt}"


@dataclass
class TrainingService:
    pool: asyncpg.Pool
    fal: FalGateway
    photos: ObjectStore
    config: TrainerConfig
    metrics: TrainerMetrics

    async def on_requested(self, event: TrainingRequested, delivery: Delivery) -> None:
        key = idempotency_key(event.avatar_id, event.attempt)
        plan = plan_training(event.training_type, event.priority, event.trigger_word, event.attempt)
        existing = await self._reserve(key, event, plan)
        if existing is not None:
            await self._resume(existing, event, delivery)
            return
        try:
            await self._check_limits(event)
            archive, count = await build_archive(self.pool, self.photos, event.avatar_id)
            url = await self.fal.upload(archive, "application/zip", f"{event.avatar_id}.zip")
            webhook = f"{self.config.webhook_url}?key={key}"
            request_id = await self.fal.submit(plan.endpoint, plan.arguments(url), webhook)
        except FalRejectedSpend as exc:
            await self._fail(key, event, FailureReason.SPEND_LIMIT, str(exc), True)
            return
        except FalRejected as exc:
            await self._fail(key, event, FailureReason.FAL_REJECTED_INPUT, str(exc), False)
            return
        except (FalRetryable, TryLater) as exc:
            if delivery.last:
                await self._fail(key, event, FailureReason.FAL_ERROR, str(exc), True)
                return
            await self.pool.execute("DELETE FROM fal_submissions WHERE idempotency_key = $1", key)
            raise
        self.metrics.fal_requests.labels(plan.endpoint, "submitted").inc()
        await self._record(key, event, plan, url, webhook, request_id, count)

    async def _reserve(
        self, key: str, event: TrainingRequested, plan: TrainingPlan
    ) -> asyncpg.Record | None:
        """Insert the ledger row; returns the existing row when this attempt was seen before."""
        inserted = await self.pool.fetchval(
            "INSERT INTO fal_submissions (kind, subject_id, attempt, idempotency_key, endpoint,"
            " state) VALUES ('training', $1, $2, $3, $4, 'submitting')"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            event.avatar_id,
            event.attempt,
            key,
            plan.endpoint,
        )
        if inserted is not None:
            return None
        row: asyncpg.Record | None = await self.pool.fetchrow(
            "SELECT state, request_id, endpoint, created_at FROM fal_submissions"
            " WHERE idempotency_key = $1",
            key,
        )
        return row

    async def _resume(
        self, row: asyncpg.Record, event: TrainingRequested, delivery: Delivery
    ) -> None:
        if row["state"] == "submitted":
            self.metrics.duplicate_requests.inc()
            async with UnitOfWork(self.pool, "trainer") as uow:
                uow.publish(self._submitted_event(event, row["endpoint"], row["request_id"]))
            return
        if row["state"] != "submitting":
            return
        if utcnow() - row["created_at"] < RECONCILE_WINDOW and not delivery.last:
            raise TryLater("an earlier delivery is submitting this attempt; waiting for it")
        key = idempotency_key(event.avatar_id, event.attempt)
        await self._fail(key, event, FailureReason.INTERNAL, "submission outcome unknown", True)

    async def _check_limits(self, event: TrainingRequested) -> None:
        running = await self.pool.fetchval(
            "SELECT count(*) FROM fal_submissions s JOIN avatars a ON a.id = s.subject_id"
            " WHERE s.kind = 'training' AND s.state = 'submitted'"
            " AND a.training_finished_at IS NULL"
        )
        if running >= self.config.max_concurrent_trainings:
            raise TryLater(f"{running} trainings running")
        spent = await spent_last_day(self.pool)
        if spent >= self.config.daily_spend_limit_usd:
            raise FalRejectedSpend(f"daily spend {spent} reached")

    async def _record(
        self,
        key: str,
        event: TrainingRequested,
        plan: TrainingPlan,
        images_url: str,
        webhook: str,
        request_id: str,
        photo_count: int,
    ) -> None:
        cost = round(plan.steps / 1000 * self.config.training_cost_per_1000_steps_usd, 4)
        async with UnitOfWork(self.pool, "trainer") as uow:
            still_wanted = await uow.conn.fetchval(
                "UPDATE fal_submissions SET state = 'submitted', request_id = $2,"
                " submitted_at = now(), updated_at = now()"
                " WHERE idempotency_key = $1 AND state = 'submitting' RETURNING 1",
                key,
                request_id,
            )
            if still_wanted is None:  # cancelled while we were submitting: stop the job
                await uow.conn.execute(
                    "UPDATE fal_submissions SET request_id = $2, updated_at = now()"
                    " WHERE idempotency_key = $1",
                    key,
                    request_id,
                )
            await uow.conn.execute(
                "UPDATE avatars SET fal_request_id = $2, fal_endpoint = $3,"
                " finetune_type = $4::fal_finetune_type, finetune_comment = $5,"
                " learning_rate = $6, steps = $7, lora_rank = $8, trigger_phrase = $9,"
                " multiresolution_training = $10, subject_crop = $11, create_masks = $12,"
                " captioning = $13, webhook_url = $14, images_data_url = $15,"
                " submitted_attempt = $16, submitted_at = now(), cost_usd = $17 WHERE id = $1",
                event.avatar_id,
                request_id,
                plan.endpoint,
                plan.finetune_type,
                f"{plan.finetune_comment}, {photo_count} photos",
                plan.learning_rate,
                plan.steps,
                plan.lora_rank,
                plan.trigger_phrase,
                plan.multiresolution_training,
                plan.subject_crop,
                plan.create_masks,
                plan.captioning,
                webhook,
                images_url,
                event.attempt,
                cost,
            )
            if still_wanted is not None:
                uow.publish(self._submitted_event(event, plan.endpoint, request_id))
        if still_wanted is None:
            with contextlib.suppress(FalRejected, FalRetryable):
                await self.fal.cancel(plan.endpoint, request_id)
            return
        self.metrics.trainings_submitted.labels(event.training_type.value).inc()
        self.metrics.spend_usd.labels("training").inc(cost)
        log.info(
            "training submitted", extra={"avatar_id": event.avatar_id, "request_id": request_id}
        )

    async def _fail(
        self, key: str, event: TrainingRequested, reason: FailureReason, detail: str, retry: bool
    ) -> None:
        async with UnitOfWork(self.pool, "trainer") as uow:
            await uow.conn.execute(
                "UPDATE fal_submissions SET state = 'failed', error = $2, updated_at = now()"
                " WHERE idempotency_key = $1",
                key,
                detail[:500],
            )
            uow.publish(
                TrainingFailed(
                    event_id=derived_event_id("training.failed", event.avatar_id, event.attempt),
                    occurred_at=utcnow(),
                    avatar_id=event.avatar_id,
                    user_id=event.user_id,
                    attempt=event.attempt,
                    reason=reason,
                    retryable=retry,
                    detail=detail[:200],
                )
            )
        self.metrics.trainings_failed_to_submit.labels(reason.value).inc()
        log.warning("training not submitted: %s", detail, extra={"avatar_id": event.avatar_id})

    @staticmethod
    def _submitted_event(
        event: TrainingRequested, endpoint: str, request_id: str
    ) -> TrainingSubmitted:
        return TrainingSubmitted(
            event_id=derived_event_id("training.submitted", event.avatar_id, event.attempt),
            occurred_at=utcnow(),
            avatar_id=event.avatar_id,
            user_id=event.user_id,
            attempt=event.attempt,
            training_type=event.training_type,
            request_id=request_id,
            endpoint=endpoint,
        )

    async def on_cancel(self, event: TrainingCancelRequested, delivery: Delivery) -> None:
        """Cancel at FAL if submitted; an unsubmitted attempt is simply marked cancelled."""
        key = idempotency_key(event.avatar_id, event.attempt)
        row = await self.pool.fetchrow(
            "SELECT state, request_id, endpoint FROM fal_submissions WHERE idempotency_key = $1",
            key,
        )
        if row is not None and row["state"] == "submitted":
            try:
                await self.fal.cancel(row["endpoint"], row["request_id"])
            except FalRejected as exc:
                log.info("FAL refused cancel (job probably finished): %s", exc)
        async with UnitOfWork(self.pool, "trainer") as uow:
            # Without a ledger row the request has not been handled yet: leave a cancelled
            # row so that, when it is, it is not submitted.
            await uow.conn.execute(
                "INSERT INTO fal_submissions (kind, subject_id, attempt, idempotency_key,"
                " endpoint, state) VALUES ('training', $2, $3, $1, '', 'cancelled')"
                " ON CONFLICT (idempotency_key) DO UPDATE SET state = 'cancelled',"
                " updated_at = now() WHERE fal_submissions.state IN ('submitting', 'submitted')",
                key,
                event.avatar_id,
                event.attempt,
            )
            uow.publish(
                TrainingCancelled(
                    event_id=derived_event_id("training.cancelled", event.avatar_id, event.attempt),
                    occurred_at=utcnow(),
                    avatar_id=event.avatar_id,
                    user_id=event.user_id,
                    attempt=event.attempt,
                    request_id=row["request_id"] if row else None,
                )
            )


class FalRejectedSpend(FalRejected):
    """The daily spend limit is reached: refused before FAL is called."""
