"""Generation submission: one FAL job per generation id, whatever crashes or redeliveries.

The discipline of `training.py`: the ledger row `generation:<id>` is committed in state
`submitting` before FAL is called, and FAL's answer is committed with the generation's
trainer columns and `generation.submitted` in one transaction. A redelivered request finds
the row and never submits again. Everything that can refuse a request without FAL (an
avatar that is not the user's completed one, an unknown aspect ratio, the daily spend
limit) is checked after the reservation, so a refusal is also reported exactly once.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from contracts import (
    FailureReason,
    GenerationFailed,
    GenerationRequested,
    GenerationSubmitted,
    derived_event_id,
    utcnow,
)
from services.kit import credits
from services.kit.consumer import Delivery, Reject
from services.kit.db import UnitOfWork
from services.trainer.config import TrainerConfig
from services.trainer.fal_gateway import (
    FalGateway,
    FalOutcomeUnknown,
    FalRejected,
    FalRetryable,
)
from services.trainer.generation_plan import (
    FLUX_DEV,
    FLUX_LORA,
    Refused,
    estimate_cost,
    plan_generation,
)
from services.trainer.ledger import charge, refuse_unpaid
from services.trainer.metrics import TrainerMetrics
from services.trainer.orphans import claim_orphan, orphan_request_id
from services.trainer.training import TryLater

log = logging.getLogger(__name__)
#: How long a redelivery waits for an unknown submission outcome (in practice bounded by
#: the consumer's max_deliver, about two minutes: a generation's webhook comes in seconds).
RECONCILE_WINDOW = timedelta(minutes=10)


def idempotency_key(generation_id: str) -> str:
    return f"generation:{generation_id}"


@dataclass
class GenerationService:
    pool: asyncpg.Pool
    fal: FalGateway
    config: TrainerConfig
    metrics: TrainerMetrics

    async def on_requested(self, event: GenerationRequested, delivery: Delivery) -> None:
        try:
            uuid.UUID(event.generation_id)
        except ValueError:
            raise Reject(f"generation id {event.generation_id!r} is not a uuid") from None
        key = idempotency_key(event.generation_id)
        endpoint = FLUX_LORA if event.avatar_id else FLUX_DEV
        try:
            existing = await self._reserve(key, event, endpoint)
        except credits.InsufficientCredits as exc:
            await self._refuse_unpaid(key, event, endpoint, exc)
            return
        if existing is not None:
            await self._resume(existing, event, delivery)
            return
        try:
            arguments, cost = await plan_generation(self.pool, event, self.config)
            webhook = f"{self.config.webhook_url}?key={key}"
            request_id = await self.fal.submit(endpoint, arguments, webhook)
        except Refused as exc:
            await self._fail(key, event, exc.reason, str(exc))
            return
        except FalRejected as exc:
            await self._fail(key, event, FailureReason.FAL_REJECTED_INPUT, str(exc))
            return
        except FalOutcomeUnknown as exc:
            # Keep `submitting`: the redelivery adopts the job from its webhook, or fails
            # it (refunded) when the window or the deliveries run out; never a 2nd submit.
            self.metrics.unanswered_submits.inc()
            if delivery.last:
                await self._fail(key, event, FailureReason.FAL_ERROR, str(exc))
                return
            raise TryLater(str(exc)) from exc
        except FalRetryable as exc:
            if delivery.last:
                await self._fail(key, event, FailureReason.FAL_ERROR, str(exc))
                return
            await self._release(key)
            raise
        except (asyncpg.PostgresError, OSError):
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                await self._release(key)
            raise
        await self._record(key, event, endpoint, request_id, cost)

    async def _reserve(
        self, key: str, event: GenerationRequested, endpoint: str
    ) -> asyncpg.Record | None:
        """Insert the ledger row and charge the quoted credits in one transaction; returns
        the existing row when this generation was seen (and charged) before."""
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                "INSERT INTO fal_submissions (kind, subject_id, attempt, idempotency_key,"
                " endpoint, state) VALUES ('generation', $1, 1, $2, $3, 'submitting')"
                " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
                event.generation_id,
                key,
                endpoint,
            )
            if inserted is not None and await charge(
                conn,
                user_id=event.user_id,
                kind=credits.Kind.GENERATION_CHARGE,
                amount=event.credits,
                key=credits.generation_charge_key(event.generation_id),
                subject=event.generation_id,
            ):
                self.metrics.credits_charged.labels("generation").inc(event.credits)
        if inserted is not None:
            return None
        row: asyncpg.Record | None = await self.pool.fetchrow(
            "SELECT state, request_id, endpoint, created_at FROM fal_submissions"
            " WHERE idempotency_key = $1",
            key,
        )
        return row

    async def _refuse_unpaid(
        self,
        key: str,
        event: GenerationRequested,
        endpoint: str,
        exc: credits.InsufficientCredits,
    ) -> None:
        failed = GenerationFailed(
            event_id=derived_event_id("generation.failed", event.generation_id),
            occurred_at=utcnow(),
            generation_id=event.generation_id,
            user_id=event.user_id,
            reason=FailureReason.INSUFFICIENT_CREDITS,
            detail=str(exc),
        )
        if await refuse_unpaid(
            self.pool,
            kind="generation",
            subject_id=event.generation_id,
            attempt=1,
            key=key,
            endpoint=endpoint,
            failed=failed,
        ):
            self.metrics.charges_refused.labels("generation").inc()

    async def _release(self, key: str) -> None:
        """Nothing reached FAL: forget the reservation so the retry may submit."""
        await self.pool.execute("DELETE FROM fal_submissions WHERE idempotency_key = $1", key)

    async def _resume(
        self, row: asyncpg.Record, event: GenerationRequested, delivery: Delivery
    ) -> None:
        if row["state"] == "submitted":
            self.metrics.duplicate_generation_requests.inc()
            async with UnitOfWork(self.pool, "trainer") as uow:
                uow.publish(self._submitted_event(event, row["endpoint"], row["request_id"]))
            return
        if row["state"] != "submitting":
            return
        # Another delivery is submitting, or one died after FAL accepted: never submit again.
        key = idempotency_key(event.generation_id)
        orphan = await orphan_request_id(self.pool, key)
        if orphan is not None:
            await self._adopt(key, event, row["endpoint"], orphan)
            return
        if utcnow() - row["created_at"] < RECONCILE_WINDOW and not delivery.last:
            raise TryLater("submission outcome unknown; waiting for its webhook")
        await self._fail(key, event, FailureReason.INTERNAL, "submission outcome unknown")

    async def _adopt(
        self, key: str, event: GenerationRequested, endpoint: str, request_id: str
    ) -> None:
        """Take the job FAL accepted before a crash (its webhook carried our key, see
        `orphans.py`) as this generation's submission, as if the submit had answered."""
        cost = estimate_cost(
            event.aspect_ratio, event.num_images, self.config.generation_cost_per_megapixel_usd
        )
        async with UnitOfWork(self.pool, "trainer") as uow:
            if not await claim_orphan(uow.conn, key, request_id):
                return
            await _write_submission(uow.conn, event.generation_id, request_id, endpoint, cost)
            uow.publish(self._submitted_event(event, endpoint, request_id))
        self.metrics.generations_submitted.labels(endpoint).inc()
        self.metrics.spend_usd.labels("generation").inc(cost)
        log.warning(
            "adopted orphan generation job",
            extra={"generation_id": event.generation_id, "request_id": request_id},
        )

    async def _record(
        self, key: str, event: GenerationRequested, endpoint: str, request_id: str, cost: float
    ) -> None:
        async with UnitOfWork(self.pool, "trainer") as uow:
            still_wanted = await uow.conn.fetchval(
                "UPDATE fal_submissions SET state = 'submitted', request_id = $2,"
                " submitted_at = now(), updated_at = now()"
                " WHERE idempotency_key = $1 AND state = 'submitting' RETURNING 1",
                key,
                request_id,
            )
            adopted = False
            if still_wanted is not None:
                await _write_submission(uow.conn, event.generation_id, request_id, endpoint, cost)
                uow.publish(self._submitted_event(event, endpoint, request_id))
            else:  # a redelivery adopted this very job, or gave up on it meanwhile
                adopted = bool(
                    await uow.conn.fetchval(
                        "SELECT 1 FROM fal_submissions WHERE idempotency_key = $1"
                        " AND state = 'submitted' AND request_id = $2",
                        key,
                        request_id,
                    )
                )
                if not adopted:
                    await uow.conn.execute(
                        "UPDATE fal_submissions SET request_id = $2, updated_at = now()"
                        " WHERE idempotency_key = $1",
                        key,
                        request_id,
                    )
        if still_wanted is None:
            if not adopted:  # the user was told it failed: do not let it run (and bill) on
                with contextlib.suppress(FalRejected, FalRetryable):
                    await self.fal.cancel(endpoint, request_id)
            return
        self.metrics.generations_submitted.labels(endpoint).inc()
        self.metrics.spend_usd.labels("generation").inc(cost)
        log.info(
            "generation submitted",
            extra={"generation_id": event.generation_id, "request_id": request_id},
        )

    async def _fail(
        self, key: str, event: GenerationRequested, reason: FailureReason, detail: str
    ) -> None:
        async with UnitOfWork(self.pool, "trainer") as uow:
            await uow.conn.execute(
                "UPDATE fal_submissions SET state = 'failed', error = $2, updated_at = now()"
                " WHERE idempotency_key = $1",
                key,
                detail[:500],
            )
            uow.publish(
                GenerationFailed(
                    event_id=derived_event_id("generation.failed", event.generation_id),
                    occurred_at=utcnow(),
                    generation_id=event.generation_id,
                    user_id=event.user_id,
                    reason=reason,
                    detail=detail[:200],
                )
            )
        self.metrics.generations_not_submitted.labels(reason.value).inc()
        log.warning(
            "generation not submitted: %s", detail, extra={"generation_id": event.generation_id}
        )

    @staticmethod
    def _submitted_event(
        event: GenerationRequested, endpoint: str, request_id: str
    ) -> GenerationSubmitted:
        return GenerationSubmitted(
            event_id=derived_event_id("generation.submitted", event.generation_id),
            occurred_at=utcnow(),
            generation_id=event.generation_id,
            user_id=event.user_id,
            request_id=request_id,
            endpoint=endpoint,
        )


async def _write_submission(
    conn: asyncpg.Connection, generation_id: str, request_id: str, endpoint: str, cost: float
) -> None:
    """What was sent to FAL, in the generation's trainer-owned columns."""
    await conn.execute(
        "UPDATE generations SET fal_request_id = $2, fal_endpoint = $3, submitted_at = now(),"
        " cost_usd = $4 WHERE id = $1",
        generation_id,
        request_id,
        endpoint,
        cost,
    )
