"""Training submission: one FAL job per (avatar, attempt), whatever crashes or redeliveries.

A training's ledger row is committed in state `preparing` before the archive is built,
moved to `submitting` just *before* FAL is called (`training_ledger.py`), and FAL's answer
is committed with the avatar's trainer columns and the `training.submitted` event in one
transaction. A delivery that died while preparing is simply taken over. One that died
after the move finds `submitting` and does not submit again: it waits for FAL's webhook
(the webhook URL carries the idempotency key, which the status service stores), adopts the
orphan job it names, and only gives up, telling the user, after
`TRAINER_RECONCILE_MINUTES` — the step both kinds share (`submission.py`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

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
from services.trainer import ledger, lifetimes, training_ledger
from services.trainer.archive import build_archive
from services.trainer.config import TrainerConfig
from services.trainer.fal_gateway import (
    CancelOutcome,
    FalGateway,
    FalOutcomeUnknown,
    FalRejected,
    FalRetryable,
)
from services.trainer.metrics import TrainerMetrics
from services.trainer.presets import TrainingPlan, plan_training
from services.trainer.spend import spent_last_day
from services.trainer.submission import Submitter, Superseded, TryLater

log = logging.getLogger(__name__)
CONSUMER = "trainer-avatar"


def idempotency_key(avatar_id: str, attempt: int) -> str:
    return f"training:{avatar_id}:{attempt}"


def _about(event: TrainingRequested | TrainingCancelRequested, name: str) -> dict[str, Any]:
    """The fields every event about an attempt carries; its id derives from `name`, so
    a repeat of the same step publishes the same event (deduplicated downstream)."""
    return {
        "event_id": derived_event_id(name, event.avatar_id, event.attempt),
        "occurred_at": utcnow(),
        "avatar_id": event.avatar_id,
        "user_id": event.user_id,
        "attempt": event.attempt,
    }


def _plan(event: TrainingRequested) -> TrainingPlan:
    return plan_training(
        event.training_type, event.priority, event.trigger_word, event.attempt, redo=event.redo
    )


@dataclass
class TrainingService(Submitter[TrainingRequested]):
    pool: asyncpg.Pool
    fal: FalGateway
    photos: ObjectStore
    config: TrainerConfig
    metrics: TrainerMetrics
    KIND: ClassVar[str] = "training"
    SUBJECT: ClassVar[str] = "avatar_id"
    RECORDS_MOVED_ON: ClassVar[bool] = True

    async def on_requested(self, event: TrainingRequested, delivery: Delivery) -> None:
        key = idempotency_key(event.avatar_id, event.attempt)
        plan = _plan(event)
        try:
            lease, charged, ahead = await training_ledger.reserve(
                self.pool, key, event, plan, self.config.max_concurrent_trainings
            )
        except credits.InsufficientCredits as exc:
            await self._refuse_unpaid(event, plan.endpoint, exc)
            return
        if charged:
            self.metrics.credits_charged.labels("training").inc(event.credits)
        if ahead is not None:
            return  # waits in our line for a slot (`waiting_line.py`), never failed for it
        if lease is None:
            row = await ledger.existing(self.pool, key)
            if row is not None:
                await self._resume(row, event, delivery)
            return
        try:
            await self._check_limits(event)
            archive, count = await build_archive(self.pool, self.photos, event.avatar_id)
            url = await self.fal.upload(
                archive,
                "application/zip",
                f"{event.avatar_id}.zip",
                lifetime_seconds=lifetimes.ARCHIVE_SECONDS,
            )
            webhook = f"{self.config.webhook_url}?key={key}"
            lease = await self._begin_submit(key, lease)
            request_id = await self.fal.submit(
                plan.endpoint,
                plan.arguments(url),
                webhook,
                output_lifetime_seconds=lifetimes.TRAINING_OUTPUT_SECONDS,
            )
            crashpoint("trainer.after_fal_submit")
        except Superseded:
            if delivery.last:
                return  # the attempt is in other hands (or cancelled); this copy is done
            raise
        except FalRejectedSpend as exc:
            await self._fail(event, FailureReason.SPEND_LIMIT, str(exc), True)
            return
        except FalRejected as exc:
            await self._fail(event, FailureReason.FAL_REJECTED_INPUT, str(exc), False)
            return
        except FalOutcomeUnknown as exc:
            await self._unanswered(event, delivery, exc)
            return
        except (FalRetryable, TryLater) as exc:
            if await self._gave_up(event, delivery, exc):
                return
            await ledger.release(self.pool, key, lease)
            raise

        cost = self._cost(event)

        async def write(conn: asyncpg.Connection) -> None:
            await training_ledger.write_avatar_submission(
                conn,
                event,
                plan,
                request_id=request_id,
                webhook=webhook,
                images_url=url,
                comment=f"{plan.finetune_comment}, {count} photos",
                cost=cost,
            )

        await self._record(event, plan.endpoint, request_id, cost, write)
        crashpoint("trainer.after_commit")

    async def _check_limits(self, event: TrainingRequested) -> None:
        """The daily spend limit; the concurrency limit is the waiting line's (`reserve`)."""
        spent = await spent_last_day(self.pool)
        if spent >= self.config.daily_spend_limit_usd:
            raise FalRejectedSpend(f"daily spend {spent} reached")

    async def on_cancel(self, event: TrainingCancelRequested, delivery: Delivery) -> None:
        """Cancel at FAL if submitted; an unsubmitted attempt is simply marked cancelled.

        The ledger row is marked `cancelled` *before* FAL is asked, so whatever FAL does next
        (ends the run as 499, or lets it finish; with a webhook or without) the status
        service takes no outcome of this job as the training's (`training_tracking.py`).
        FAL's answers (docs/fal-outcomes.md): 202 and 404 cancel; 400 `ALREADY_COMPLETED`
        means the job finished first, so its outcome stands and nothing is cancelled."""
        key = idempotency_key(event.avatar_id, event.attempt)
        row = await self.pool.fetchrow(
            "SELECT state, request_id, endpoint FROM fal_submissions WHERE idempotency_key = $1",
            key,
        )
        request_id = row["request_id"] if row is not None else None
        before = row["state"] if row is not None else None
        await self.pool.execute(
            # Without a ledger row the request has not been handled yet: leave a cancelled
            # row so that, when it is, it is not submitted.
            "INSERT INTO fal_submissions (kind, subject_id, attempt, idempotency_key,"
            " endpoint, state) VALUES ('training', $2, $3, $1, '', 'cancelled')"
            " ON CONFLICT (idempotency_key) DO UPDATE SET state = 'cancelled',"
            " updated_at = clock_timestamp(), request = NULL"
            " WHERE fal_submissions.state IN ('preparing', 'submitting', 'submitted',"
            " 'waiting')",
            key,
            event.avatar_id,
            event.attempt,
        )
        if request_id is not None and before in ("submitted", "cancelled"):
            assert row is not None
            if await self._cancel_at_fal(row["endpoint"], request_id, delivery) is (
                CancelOutcome.ALREADY_COMPLETED
            ):
                await self.pool.execute(
                    "UPDATE fal_submissions SET state = 'submitted',"
                    " updated_at = clock_timestamp()"
                    " WHERE idempotency_key = $1 AND state = 'cancelled'",
                    key,
                )
                log.info("cancel came after FAL completed the job; its outcome stands")
                return
        async with UnitOfWork(self.pool, "trainer") as uow:
            uow.publish(
                TrainingCancelled(**_about(event, "training.cancelled"), request_id=request_id)
            )

    async def _cancel_at_fal(
        self, endpoint: str, request_id: str, delivery: Delivery
    ) -> CancelOutcome | None:
        """FAL's answer to the cancel; None when FAL refused it or kept failing (the user's
        cancel stands on our side either way: its outcome is not taken)."""
        try:
            outcome = await self.fal.cancel(endpoint, request_id)
        except FalRejected as exc:
            log.info("FAL refused cancel: %s", exc)
            return None
        except FalRetryable as exc:
            if not delivery.last:
                raise
            log.warning("FAL did not answer the cancel; cancelled on our side only: %s", exc)
            return None
        self.metrics.cancels.labels(outcome.value).inc()
        return outcome

    # What `Submitter` needs to know about a training.

    def _key(self, event: TrainingRequested) -> str:
        return idempotency_key(event.avatar_id, event.attempt)

    def _subject(self, event: TrainingRequested) -> tuple[str, int]:
        return event.avatar_id, event.attempt

    def _cost(self, event: TrainingRequested) -> float:
        steps = _plan(event).steps
        return round(steps / 1000 * self.config.training_cost_per_1000_steps_usd, 4)

    def _reconcile_window(self) -> timedelta:
        return timedelta(minutes=self.config.reconcile_minutes)

    async def _write_adopted(
        self,
        conn: asyncpg.Connection,
        event: TrainingRequested,
        endpoint: str,
        request_id: str,
        cost: float,
    ) -> None:
        plan = _plan(event)
        photos = await training_ledger.accepted_photos(conn, event.avatar_id)
        await training_ledger.write_avatar_submission(
            conn,
            event,
            plan,
            request_id=request_id,
            webhook=f"{self.config.webhook_url}?key={self._key(event)}",
            images_url=None,  # the archive's URL died with the process that uploaded it
            comment=f"{plan.finetune_comment}, {photos} photos, adopted after a crash",
            cost=cost,
        )

    def _submitted_event(
        self, event: TrainingRequested, endpoint: str, request_id: str
    ) -> TrainingSubmitted:
        return TrainingSubmitted(
            **_about(event, "training.submitted"),
            training_type=event.training_type,
            request_id=request_id,
            endpoint=endpoint,
        )

    def _failed_event(
        self, event: TrainingRequested, reason: FailureReason, detail: str, retry: bool
    ) -> TrainingFailed:
        return TrainingFailed(
            **_about(event, "training.failed"),
            reason=reason,
            retryable=retry,
            detail=detail,
        )

    def _count_submitted(self, event: TrainingRequested, endpoint: str, *, adopted: bool) -> None:
        kind = event.training_type.value
        self.metrics.trainings_submitted.labels(kind).inc()
        if adopted:
            self.metrics.orphans.labels("adopted").inc()
        else:
            self.metrics.training_submit_delay.labels(kind).observe(
                max(0.0, (utcnow() - event.occurred_at).total_seconds())
            )

    def _count_not_submitted(self, event: TrainingRequested, reason: FailureReason) -> None:
        kind = event.training_type.value
        self.metrics.trainings_failed_to_submit.labels(kind, reason.value).inc()

    def _count_duplicate(self) -> None:
        self.metrics.duplicate_requests.inc()

    def _count_orphan(self, outcome: str) -> None:
        self.metrics.orphans.labels(outcome).inc()


class FalRejectedSpend(FalRejected):
    """The daily spend limit is reached: refused before FAL is called."""
