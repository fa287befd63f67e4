"""Generation submission: one FAL job per generation id, whatever crashes or redeliveries.

The ledger row `generation:<id>` is committed in state `preparing` together with the
credits' charge, and moved to `submitting` right before FAL is called — so a delivery that
died while planning (a pack's other pictures, when the trainer is killed) is taken over and
submitted by the next one instead of waiting for a webhook that cannot come; FAL's answer
is committed with the generation's trainer columns and `generation.submitted` in one
transaction, and a redelivered request finds the row and never submits again — the step
both kinds share (`submission.py`). Everything that can refuse a request without FAL (an
avatar that is not the user's completed one, an unknown aspect ratio, the daily spend
limit) is checked after the reservation, so a refusal is also reported exactly once.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

import asyncpg
from nats.js.object_store import ObjectStore

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
from services.kit.crashpoints import crashpoint
from services.trainer import ledger, lifetimes
from services.trainer.animate_plan import ANIMATOR, estimate_animation_cost, plan_animation
from services.trainer.config import TrainerConfig
from services.trainer.fal_gateway import FalGateway, FalOutcomeUnknown, FalRejected, FalRetryable
from services.trainer.generation_plan import (
    FLUX_DEV,
    FLUX_LORA,
    Refused,
    estimate_cost,
    plan_generation,
)
from services.trainer.lora_source import LoraSource
from services.trainer.metrics import TrainerMetrics
from services.trainer.reference_plan import (
    IMAGE_TO_IMAGE,
    estimate_reference_cost,
    plan_reference,
)
from services.trainer.submission import Submitter, Superseded
from services.trainer.upscale_plan import UPSCALER, estimate_upscale_cost, plan_upscale

_RESERVE = """
INSERT INTO fal_submissions (kind, subject_id, attempt, idempotency_key, endpoint, state,
    updated_at)
VALUES ('generation', $1, 1, $2, $3, 'preparing', clock_timestamp())
ON CONFLICT (idempotency_key) DO UPDATE SET updated_at = clock_timestamp()
    WHERE fal_submissions.state = 'preparing'
RETURNING updated_at
"""
_GENERATION_SUBMITTED = """
UPDATE generations SET fal_request_id = $2, fal_endpoint = $3, submitted_at = now(),
    cost_usd = $4
WHERE id = $1
"""


def _endpoint(event: GenerationRequested) -> str:
    if event.upscale is not None:
        return UPSCALER
    if event.reference is not None:
        return IMAGE_TO_IMAGE
    if event.animate is not None:
        return ANIMATOR
    return FLUX_LORA if event.avatar_id else FLUX_DEV


def _kind(event: GenerationRequested) -> str:
    """The `kind` label of the charge and spend metrics."""
    if event.reference is not None:
        return "reference"
    if event.animate is not None:
        return "animation"
    return "upscale" if event.upscale is not None else "generation"


def idempotency_key(generation_id: str) -> str:
    return f"generation:{generation_id}"


def _about(event: GenerationRequested, name: str) -> dict[str, Any]:
    """The fields every event about a generation carries; its id derives from `name`."""
    return {
        "event_id": derived_event_id(name, event.generation_id),
        "occurred_at": utcnow(),
        "generation_id": event.generation_id,
        "user_id": event.user_id,
    }


@dataclass
class GenerationService(Submitter[GenerationRequested]):
    pool: asyncpg.Pool
    fal: FalGateway
    config: TrainerConfig
    metrics: TrainerMetrics
    #: Where a LoRA FAL has deleted is re-uploaded from (None: FAL's URL as given).
    loras: LoraSource | None = None
    #: Where an upscale's source picture is read from (`aisha_images`).
    images: ObjectStore | None = None
    #: Where a reference photo is read from (`aisha_photos`, like training photos).
    photos: ObjectStore | None = None
    KIND: ClassVar[str] = "generation"
    SUBJECT: ClassVar[str] = "generation_id"
    RECORDS_MOVED_ON: ClassVar[bool] = False

    async def on_requested(self, event: GenerationRequested, delivery: Delivery) -> None:
        try:
            uuid.UUID(event.generation_id)
        except ValueError:
            raise Reject(f"generation id {event.generation_id!r} is not a uuid") from None
        key = idempotency_key(event.generation_id)
        endpoint = _endpoint(event)
        try:
            lease = await self._reserve(key, event, endpoint)
        except credits.InsufficientCredits as exc:
            await self._refuse_unpaid(event, endpoint, exc)
            return
        if lease is None:
            existing = await ledger.existing(self.pool, key)
            if existing is not None:
                await self._resume(existing, event, delivery)
            return
        try:
            if event.upscale is not None:
                arguments, cost = await plan_upscale(
                    self.pool, event, self.config, self.fal, self.images
                )
            elif event.reference is not None:
                arguments, cost = await plan_reference(
                    self.pool, event, self.config, self.fal, self.loras, self.photos
                )
            elif event.animate is not None:
                arguments, cost = await plan_animation(
                    self.pool, event, self.config, self.fal, self.images
                )
            else:
                arguments, cost = await plan_generation(self.pool, event, self.config, self.loras)
            webhook = f"{self.config.webhook_url}?key={key}"
            lease = await self._begin_submit(key, lease)
            request_id = await self.fal.submit(
                endpoint,
                arguments,
                webhook,
                output_lifetime_seconds=lifetimes.GENERATION_OUTPUT_SECONDS,
            )
            crashpoint("trainer.after_generation_submit")
        except Superseded:
            if delivery.last:
                return  # the job is in other hands; this copy is done
            raise
        except Refused as exc:
            await self._fail(event, exc.reason, str(exc))
            return
        except FalRejected as exc:
            await self._fail(event, FailureReason.FAL_REJECTED_INPUT, str(exc))
            return
        except FalOutcomeUnknown as exc:
            await self._unanswered(event, delivery, exc)
            return
        except FalRetryable as exc:
            if await self._gave_up(event, delivery, exc):
                return
            await ledger.release(self.pool, key, lease)
            raise
        except (asyncpg.PostgresError, OSError):
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                await ledger.release(self.pool, key, lease)
            raise

        async def write(conn: asyncpg.Connection) -> None:
            await conn.execute(
                _GENERATION_SUBMITTED, event.generation_id, request_id, endpoint, cost
            )

        await self._record(event, endpoint, request_id, cost, write)

    async def _reserve(
        self, key: str, event: GenerationRequested, endpoint: str
    ) -> datetime | None:
        """Own the job in `preparing` (new, or taken over from a delivery that died before
        FAL) and charge the quoted credits (once per generation, whoever takes it over) in
        one transaction: the lease, or None when the job is past `preparing`."""
        async with self.pool.acquire() as conn, conn.transaction():
            lease: datetime | None = await conn.fetchval(
                _RESERVE, event.generation_id, key, endpoint
            )
            if lease is not None and await ledger.charge(
                conn,
                user_id=event.user_id,
                kind=credits.Kind.GENERATION_CHARGE,
                amount=event.credits,
                key=credits.generation_charge_key(event.generation_id),
                subject=event.generation_id,
            ):
                self.metrics.credits_charged.labels(_kind(event)).inc(event.credits)
        return lease

    # What `Submitter` needs to know about a generation.

    def _key(self, event: GenerationRequested) -> str:
        return idempotency_key(event.generation_id)

    def _subject(self, event: GenerationRequested) -> tuple[str, int]:
        return event.generation_id, 1

    def _cost(self, event: GenerationRequested) -> float:
        if event.upscale is not None:
            return estimate_upscale_cost(event.upscale, self.config.upscale_cost_per_megapixel_usd)
        if event.reference is not None:
            per_megapixel = self.config.generation_cost_per_megapixel_usd
            return estimate_reference_cost(event.reference, per_megapixel)
        if event.animate is not None:
            return estimate_animation_cost(event.animate, self.config.animation_cost_5s_usd)
        usd_per_megapixel = self.config.generation_cost_per_megapixel_usd
        return estimate_cost(event.aspect_ratio, event.num_images, usd_per_megapixel)

    def _reconcile_window(self) -> timedelta:
        return timedelta(seconds=self.config.generation_reconcile_seconds)

    async def _write_adopted(
        self,
        conn: asyncpg.Connection,
        event: GenerationRequested,
        endpoint: str,
        request_id: str,
        cost: float,
    ) -> None:
        await conn.execute(_GENERATION_SUBMITTED, event.generation_id, request_id, endpoint, cost)

    def _submitted_event(
        self, event: GenerationRequested, endpoint: str, request_id: str
    ) -> GenerationSubmitted:
        return GenerationSubmitted(
            **_about(event, "generation.submitted"),
            request_id=request_id,
            endpoint=endpoint,
        )

    def _failed_event(
        self, event: GenerationRequested, reason: FailureReason, detail: str, retry: bool
    ) -> GenerationFailed:
        return GenerationFailed(
            **_about(event, "generation.failed"),
            reason=reason,
            detail=detail,
        )

    def _count_submitted(self, event: GenerationRequested, endpoint: str, *, adopted: bool) -> None:
        self.metrics.generations_submitted.labels(endpoint, _kind(event)).inc()

    def _count_not_submitted(self, event: GenerationRequested, reason: FailureReason) -> None:
        self.metrics.generations_not_submitted.labels(reason.value).inc()

    def _count_duplicate(self) -> None:
        self.metrics.duplicate_generation_requests.inc()

    def _count_orphan(self, outcome: str) -> None:
        if outcome == "unanswered":  # generations count no waits nor give-ups
            self.metrics.unanswered_submits.inc()

    def _spend_kind(self, event: GenerationRequested) -> str:
        return _kind(event)
