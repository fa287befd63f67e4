"""The submission step trainings and generations share: one FAL job per key, told once.

Both kinds reserve a ledger row (`ledger.py`) before FAL is called and commit FAL's answer
with their subject's columns and their `*.submitted` event in one transaction. What happens
after the reservation is the same for both and lives here: a redelivery that finds the job
`submitted` republishes the event; one that finds it `submitting` (the outcome is unknown)
adopts the job its webhook names (`orphans.py`), waits for that webhook, or gives up and
reports a failure; FAL's answer is recorded (and the job cancelled at FAL if the attempt
moved on meanwhile); a failure is recorded and reported once. `Submitter` is that step;
`TrainingService` and `GenerationService` supply their events, SQL, costs and metrics.
"""

from __future__ import annotations

import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import ClassVar, Generic, TypeVar

import asyncpg

from contracts import Event, FailureReason, utcnow
from services.kit import credits
from services.kit.consumer import Delivery
from services.kit.db import UnitOfWork
from services.trainer import ledger
from services.trainer.config import TrainerConfig
from services.trainer.fal_gateway import FalGateway, FalOutcomeUnknown, FalRejected, FalRetryable
from services.trainer.metrics import TrainerMetrics
from services.trainer.orphans import claim_orphan, orphan_request_id

log = logging.getLogger(__name__)
R = TypeVar("R", bound=Event)
#: Writes what was sent to FAL into the subject's columns, on the given connection.
WriteColumns = Callable[[asyncpg.Connection], Awaitable[None]]


class TryLater(Exception):
    """Not now (limits, or an unfinished earlier attempt): the consumer naks with backoff."""


class Superseded(TryLater):
    """Another delivery (or a cancel) took the attempt over: back off, FAL not called."""


class Submitter(ABC, Generic[R]):
    """The shared step over one kind's request event `R`; subclasses are the two kinds."""

    pool: asyncpg.Pool
    fal: FalGateway
    config: TrainerConfig
    metrics: TrainerMetrics
    #: The ledger's `kind`, the `kind` label of the shared metrics, and the log wording.
    KIND: ClassVar[str]
    #: The log field naming the subject (`avatar_id`, `generation_id`).
    SUBJECT: ClassVar[str]
    #: Whether FAL's answer still goes into the subject's columns when the attempt moved on
    #: while FAL answered: a cancelled training keeps its job's request id and cost; a
    #: generation the user was told failed does not.
    RECORDS_MOVED_ON: ClassVar[bool]

    @abstractmethod
    def _key(self, event: R) -> str:
        """The ledger's idempotency key (also in the webhook URL)."""

    @abstractmethod
    def _subject(self, event: R) -> tuple[str, int]:
        """The ledger's subject id and attempt."""

    @abstractmethod
    def _submitted_event(self, event: R, endpoint: str, request_id: str) -> Event: ...

    @abstractmethod
    def _failed_event(self, event: R, reason: FailureReason, detail: str, retry: bool) -> Event:
        """The failure as reported (`retry`: whether the user may simply try again)."""

    @abstractmethod
    def _cost(self, event: R) -> float:
        """The estimated FAL cost in US dollars, counted in the daily spend."""

    @abstractmethod
    def _reconcile_window(self) -> timedelta:
        """How long a redelivery waits for the webhook of a job whose submit went unanswered."""

    @abstractmethod
    async def _write_adopted(
        self, conn: asyncpg.Connection, event: R, endpoint: str, request_id: str, cost: float
    ) -> None:
        """The subject's columns for an adopted orphan (what the lost answer would have written)."""

    @abstractmethod
    def _count_submitted(self, event: R, endpoint: str, *, adopted: bool) -> None: ...

    @abstractmethod
    def _count_not_submitted(self, event: R, reason: FailureReason) -> None: ...

    @abstractmethod
    def _count_duplicate(self) -> None: ...

    @abstractmethod
    def _count_orphan(self, outcome: str) -> None:
        """`unanswered`, `waiting` or `given_up` (adoptions go to `_count_submitted`)."""

    def _spend_kind(self, event: R) -> str:
        """The `kind` label of the spend metric (an upscale is a generation in the ledger)."""
        return self.KIND

    def _ids(self, event: R) -> dict[str, str]:
        return {self.SUBJECT: self._subject(event)[0]}

    async def _refuse_unpaid(
        self, event: R, endpoint: str, exc: credits.InsufficientCredits
    ) -> None:
        subject_id, attempt = self._subject(event)
        failed = self._failed_event(event, FailureReason.INSUFFICIENT_CREDITS, str(exc), True)
        if await ledger.refuse_unpaid(
            self.pool,
            kind=self.KIND,
            subject_id=subject_id,
            attempt=attempt,
            key=self._key(event),
            endpoint=endpoint,
            failed=failed,
        ):
            self.metrics.charges_refused.labels(self.KIND).inc()

    async def _begin_submit(self, key: str, lease: datetime) -> datetime:
        """Commit `submitting` right before FAL is called; another delivery that took the
        job over (or a cancel) wins, and this one backs off without calling FAL."""
        renewed = await ledger.begin_submit(self.pool, key, lease)
        if renewed is None:
            raise Superseded("this job moved on while it was prepared")
        return renewed

    async def _resume(self, row: asyncpg.Record, event: R, delivery: Delivery) -> None:
        """A redelivery of a request that was reserved before: never submit again."""
        if row["state"] == "submitted":
            self._count_duplicate()
            async with UnitOfWork(self.pool, "trainer") as uow:
                uow.publish(self._submitted_event(event, row["endpoint"], row["request_id"]))
            return
        if row["state"] != "submitting":
            return
        # Another delivery is submitting, or one died after FAL accepted: never submit again.
        key = self._key(event)
        request_id = await orphan_request_id(self.pool, key)
        if request_id is not None:
            await self._adopt(event, row["endpoint"], request_id)
            return
        if utcnow() - row["created_at"] < self._reconcile_window() and not delivery.last:
            self._count_orphan("waiting")
            raise TryLater("submission outcome unknown; waiting for its webhook")
        self._count_orphan("given_up")
        await self._fail(event, FailureReason.INTERNAL, "submission outcome unknown")

    async def _adopt(self, event: R, endpoint: str, request_id: str) -> None:
        """Take the job FAL accepted before a crash (its webhook carried our key, see
        `orphans.py`) as this request's submission, as if the submit had answered."""
        cost = self._cost(event)
        async with UnitOfWork(self.pool, "trainer") as uow:
            if not await claim_orphan(uow.conn, self._key(event), request_id):
                return
            await self._write_adopted(uow.conn, event, endpoint, request_id, cost)
            uow.publish(self._submitted_event(event, endpoint, request_id))
        log.warning(
            "adopted orphan %s job",
            self.KIND,
            extra={**self._ids(event), "request_id": request_id},
        )
        self._count_submitted(event, endpoint, adopted=True)
        self.metrics.spend_usd.labels(self._spend_kind(event)).inc(cost)

    async def _unanswered(self, event: R, delivery: Delivery, exc: FalOutcomeUnknown) -> None:
        """FAL may have queued the job: the row stays `submitting`, so the redelivery waits
        for the job's webhook and adopts it (or gives up after the reconcile window),
        never submitting again; on the last delivery the failure is reported now."""
        self._count_orphan("unanswered")
        if delivery.last:
            await self._fail(event, FailureReason.FAL_ERROR, str(exc))
            return
        raise TryLater(str(exc)) from exc

    async def _gave_up(self, event: R, delivery: Delivery, exc: Exception) -> bool:
        """True (and the failure reported) when a retryable error hit the last delivery."""
        if not delivery.last:
            return False
        await self._fail(event, FailureReason.FAL_ERROR, str(exc))
        return True

    async def _record(
        self, event: R, endpoint: str, request_id: str, cost: float, write: WriteColumns
    ) -> bool:
        """FAL's answer, the subject's columns (`write`) and the submitted event in one
        transaction; False when the attempt had moved on (then the job is cancelled at FAL,
        unless a redelivery adopted this very job meanwhile)."""
        async with UnitOfWork(self.pool, "trainer") as uow:
            marked = await ledger.mark_submitted(uow.conn, self._key(event), request_id)
            if marked is ledger.Marked.ADOPTED:
                return False  # a redelivery adopted this very job from its webhook: all done
            if marked is ledger.Marked.SUBMITTED or self.RECORDS_MOVED_ON:
                await write(uow.conn)
            if marked is ledger.Marked.SUBMITTED:
                uow.publish(self._submitted_event(event, endpoint, request_id))
        if marked is ledger.Marked.MOVED_ON:
            # The user was told it failed (or cancelled it): do not let it run (and bill) on.
            with contextlib.suppress(FalRejected, FalRetryable):
                await self.fal.cancel(endpoint, request_id)
            return False
        self._count_submitted(event, endpoint, adopted=False)
        self.metrics.spend_usd.labels(self._spend_kind(event)).inc(cost)
        log.info("%s submitted", self.KIND, extra={**self._ids(event), "request_id": request_id})
        return True

    async def _fail(self, event: R, reason: FailureReason, detail: str, retry: bool = True) -> None:
        async with UnitOfWork(self.pool, "trainer") as uow:
            await ledger.mark_failed(uow.conn, self._key(event), detail)
            uow.publish(self._failed_event(event, reason, detail[:200], retry))
        self._count_not_submitted(event, reason)
        log.warning("%s not submitted: %s", self.KIND, detail, extra=self._ids(event))
