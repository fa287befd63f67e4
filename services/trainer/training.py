"""Training submission: one FAL job per (avatar, attempt), whatever crashes or redeliveries.

The `fal_submissions` ledger (`ledger.py`) is the idempotency key store. A row is
committed in state `preparing` before the archive is built, moved to `submitting` just
*before* FAL is called, and FAL's answer is committed with the avatar's trainer columns
and the `training.submitted` event in one transaction. A delivery that died while
preparing is simply taken over. One that died after the move finds `submitting` and does
not submit again: it waits for FAL's webhook (the webhook URL carries the idempotency
key, which the status service stores), adopts the orphan job it names, and only gives
up, telling the user, after `TRAINER_RECONCILE_MINUTES`.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

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
from services.kit import credits
from services.kit.consumer import Delivery
from services.kit.crashpoints import crashpoint
from services.kit.db import UnitOfWork
from services.trainer import ledger
from services.trainer.archive import build_archive
from services.trainer.config import TrainerConfig
from services.trainer.fal_gateway import (
    FalGateway,
    FalOutcomeUnknown,
    FalRejected,
    FalRetryable,
)
from services.trainer.metrics import TrainerMetrics
from services.trainer.presets import TrainingPlan, plan_training
from services.trainer.spend import spent_last_day

log = logging.getLogger(__name__)
CONSUMER = "trainer-avatar"
#: Generations' wait for an unknown submission outcome (trainings use reconcile_minutes).
RECONCILE_WINDOW = timedelta(minutes=10)


class TryLater(Exception):
    """Not now (limits, or an unfinished earlier attempt): the consumer naks with backoff."""


class Superseded(TryLater):
    """Another delivery (or a cancel) took the attempt over: back off, FAL not called."""


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
        try:
            lease, charged = await ledger.reserve(self.pool, key, event, plan)
        except credits.InsufficientCredits as exc:
            await self._refuse_unpaid(key, event, plan, exc)
            return
        if charged:
            self.metrics.credits_charged.labels("training").inc(event.credits)
        if lease is None:
            row = await ledger.existing(self.pool, key)
            if row is not None:
                await self._resume(row, event, plan, delivery)
            return
        try:
            await self._check_limits(event)
            archive, count = await build_archive(self.pool, self.photos, event.avatar_id)
            url = await self.fal.upload(archive, "application/zip", f"{event.avatar_id}.zip")
            webhook = f"{self.config.webhook_url}?key={key}"
            lease = await self._begin_submit(key, lease)
            request_id = await self.fal.submit(plan.endpoint, plan.arguments(url), webhook)
            crashpoint("trainer.after_fal_submit")
        except Superseded:
            if delivery.last:
                return  # the attempt is in other hands (or cancelled); this copy is done
            raise
        except FalRejectedSpend as exc:
            await self._fail(key, event, FailureReason.SPEND_LIMIT, str(exc), True)
            return
        except FalRejected as exc:
            await self._fail(key, event, FailureReason.FAL_REJECTED_INPUT, str(exc), False)
            return
        except FalOutcomeUnknown as exc:
            # The row stays `submitting`: the redelivery waits for the job's webhook and
            # adopts it (or gives up after the reconcile window), never submitting again.
            self.metrics.orphans.labels("unanswered").inc()
            if delivery.last:
                await self._fail(key, event, FailureReason.FAL_ERROR, str(exc), True)
                return
            raise TryLater(str(exc)) from exc
        except (FalRetryable, TryLater) as exc:
            if delivery.last:
                await self._fail(key, event, FailureReason.FAL_ERROR, str(exc), True)
                return
            await ledger.release(self.pool, key, lease)
            raise
        await self._record(key, event, plan, url, webhook, request_id, count)
        crashpoint("trainer.after_commit")

    async def _refuse_unpaid(
        self,
        key: str,
        event: TrainingRequested,
        plan: TrainingPlan,
        exc: credits.InsufficientCredits,
    ) -> None:
        failed = TrainingFailed(
            event_id=derived_event_id("training.failed", event.avatar_id, event.attempt),
            occurred_at=utcnow(),
            avatar_id=event.avatar_id,
            user_id=event.user_id,
            attempt=event.attempt,
            reason=FailureReason.INSUFFICIENT_CREDITS,
            retryable=True,
            detail=str(exc),
        )
        if await ledger.refuse_unpaid(
            self.pool,
            kind="training",
            subject_id=event.avatar_id,
            attempt=event.attempt,
            key=key,
            endpoint=plan.endpoint,
            failed=failed,
        ):
            self.metrics.charges_refused.labels("training").inc()

    async def _begin_submit(self, key: str, lease: datetime) -> datetime:
        """Commit `submitting` right before FAL is called; another delivery that took the
        attempt over (or a cancel) wins, and this one backs off without calling FAL."""
        renewed = await ledger.begin_submit(self.pool, key, lease)
        if renewed is None:
            raise Superseded("this attempt moved on while its archive was prepared")
        return renewed

    async def _resume(
        self, row: asyncpg.Record, event: TrainingRequested, plan: TrainingPlan, delivery: Delivery
    ) -> None:
        if row["state"] == "submitted":
            self.metrics.duplicate_requests.inc()
            async with UnitOfWork(self.pool, "trainer") as uow:
                uow.publish(self._submitted_event(event, row["endpoint"], row["request_id"]))
            return
        if row["state"] != "submitting":
            return
        # Another delivery is submitting, or one died after FAL accepted: never submit again.
        key = idempotency_key(event.avatar_id, event.attempt)
        request_id = await ledger.orphan_request_id(self.pool, key)
        if request_id is not None:
            await self._adopt(key, event, plan, request_id)
            return
        window = timedelta(minutes=self.config.reconcile_minutes)
        if utcnow() - row["created_at"] < window and not delivery.last:
            self.metrics.orphans.labels("waiting").inc()
            raise TryLater("submission outcome unknown; waiting for its webhook")
        self.metrics.orphans.labels("given_up").inc()
        await self._fail(key, event, FailureReason.INTERNAL, "submission outcome unknown", True)

    async def _adopt(
        self, key: str, event: TrainingRequested, plan: TrainingPlan, request_id: str
    ) -> None:
        """Take the orphan job as this attempt's submission (see `orphans.py`)."""
        cost = self._cost(plan)
        submitted = self._submitted_event(event, plan.endpoint, request_id)
        webhook = f"{self.config.webhook_url}?key={key}"
        if not await ledger.adopt(self.pool, event, plan, submitted, key, webhook, cost):
            return
        self.metrics.orphans.labels("adopted").inc()
        self.metrics.trainings_submitted.labels(event.training_type.value).inc()
        self.metrics.spend_usd.labels("training").inc(cost)

    def _cost(self, plan: TrainingPlan) -> float:
        return round(plan.steps / 1000 * self.config.training_cost_per_1000_steps_usd, 4)

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
        cost = self._cost(plan)
        async with UnitOfWork(self.pool, "trainer") as uow:
            still_wanted = await uow.conn.fetchval(
                "UPDATE fal_submissions SET state = 'submitted', request_id = $2,"
                " submitted_at = now(), updated_at = now()"
                " WHERE idempotency_key = $1 AND state = 'submitting' RETURNING 1",
                key,
                request_id,
            )
            if still_wanted is None:  # cancelled (or adopted) while we were submitting
                if await uow.conn.fetchval(
                    "SELECT 1 FROM fal_submissions WHERE idempotency_key = $1"
                    " AND state = 'submitted' AND request_id = $2",
                    key,
                    request_id,
                ):
                    return  # a redelivery adopted this very job from its webhook: all done
                await uow.conn.execute(
                    "UPDATE fal_submissions SET request_id = $2, updated_at = now()"
                    " WHERE idempotency_key = $1",
                    key,
                    request_id,
                )
            await ledger.write_avatar_submission(
                uow.conn,
                event,
                plan,
                request_id=request_id,
                webhook=webhook,
                images_url=images_url,
                comment=f"{plan.finetune_comment}, {photo_count} photos",
                cost=cost,
            )
            if still_wanted is not None:
                uow.publish(self._submitted_event(event, plan.endpoint, request_id))
        if still_wanted is None:
            with contextlib.suppress(FalRejected, FalRetryable):
                await self.fal.cancel(plan.endpoint, request_id)
            return
        self.metrics.trainings_submitted.labels(event.training_type.value).inc()
        self.metrics.training_submit_delay.labels(event.training_type.value).observe(
            max(0.0, (utcnow() - event.occurred_at).total_seconds())
        )
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
        kind = event.training_type.value
        self.metrics.trainings_failed_to_submit.labels(kind, reason.value).inc()
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
                " updated_at = clock_timestamp()"
                " WHERE fal_submissions.state IN ('preparing', 'submitting', 'submitted')",
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
