"""Polling: the progress source while a job runs, and the fallback when a webhook is lost.

Replicas share the work through `FOR UPDATE SKIP LOCKED` on due rows (indexes
`ix_avatars_poll_due`, `ix_generations_poll_due`: trainings and generations draw on the
same FAL request budget); each claimed row's next poll is pushed out before FAL is asked,
so a crash cannot make two replicas poll the same job in a tight loop. A token bucket
caps this replica's FAL request rate; failures back the job off exponentially in the
number of polls since the last good answer (`poll_count`, reset by every progress
update), not in the job's age: one 500 after an hour of polling waits seconds, not minutes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import fal_client
import httpx

from contracts import utcnow
from services.kit.db import DB_ERRORS
from services.kit.falmetrics import read_status
from services.kit.logs import log_context
from services.kit.waiting import pause
from services.status.estimate import TypicalDurations, estimate
from services.status.generation_tracking import GenerationTracker
from services.status.images import ResultsUnavailable
from services.status.metrics import StatusMetrics
from services.status.progress import format_logs, percent_from_logs
from services.status.training_tracking import Tracker
from services.status.webhooks import WebhookReceiver

log = logging.getLogger(__name__)

_CLAIM = """
WITH due AS (
    SELECT id FROM avatars
    WHERE fal_request_id IS NOT NULL AND training_finished_at IS NULL
      AND next_poll_at <= now()
    ORDER BY next_poll_at LIMIT $1 FOR UPDATE SKIP LOCKED
)
UPDATE avatars a SET next_poll_at = now() + make_interval(secs => $2),
    poll_count = poll_count + 1
FROM due WHERE a.id = due.id
RETURNING a.id, a.fal_request_id, a.fal_endpoint, a.training_progress, a.poll_count,
    a.steps, a.training_started_at
"""
_CLAIM_GENERATIONS = """
WITH due AS (
    SELECT id FROM generations
    WHERE fal_request_id IS NOT NULL AND finished_at IS NULL AND next_poll_at <= now()
    ORDER BY next_poll_at LIMIT $1 FOR UPDATE SKIP LOCKED
)
UPDATE generations g SET next_poll_at = now() + make_interval(secs => $2),
    poll_count = poll_count + 1
FROM due WHERE g.id = due.id
RETURNING g.id, g.fal_request_id, g.fal_endpoint, g.poll_count
"""


class UnreadableStatus(fal_client.client.FalClientError):
    """FAL answered a status fal-client cannot read: a status name it does not know (FAL may
    add one), a missing `queue_position` or `logs`. fal-client raises `ValueError` /
    `KeyError` for these, which used to end the poller task (and the service with it); now
    the job is polled again later, like after any failed poll."""


class RequestGone(Exception):
    """FAL no longer holds a request it accepted: the result of a completed job answers
    404/410 (kept 1 h after completion, 6 min when 10 KB or larger — fal.md "Results"), or
    the status does so `GONE_AFTER_POLLS` polls in a row. The job ends as a failure with
    this reason (refunded), instead of being polled again for ever."""


#: Status 404/410s in a row before a request counts as gone (one may be a new request not
#: yet visible everywhere at FAL).
GONE_AFTER_POLLS = 3
_GONE = (404, 410)
#: What an unreadable FAL answer raises in fal-client (not JSON, or not a status we know).
_UNREADABLE = (ValueError, KeyError, TypeError)
_FAL_ERRORS = (fal_client.client.FalClientError, httpx.HTTPError, TimeoutError, OSError)
#: FAL's `error_type` for a request that was cancelled. Only our trainer cancels (it holds
#: the key), and it reports the cancellation itself (`TrainingCancelled`, applied by
#: `Tracker.on_cancelled`), so a poll that finds it is not a failure to report: doing so
#: raced that event and could tell a user who pressed Cancel that training failed.
CANCELLED_AT_FAL = "request_cancelled"


class TokenBucket:
    """At most `rate` requests in any one-second window, as FAL counts them; `take` waits.

    A sliding log of the last `rate` requests, not a refilling bucket: a bucket with a burst
    of `rate` lets twice the budget through in one second (the burst, then the refill). A
    request's time is logged again at the next `take()`, when it has completed (the poller
    makes one request at a time), so no earlier than FAL saw it: a request slowed on its way
    (a new TLS connection) cannot squeeze an extra one into FAL's second.
    """

    def __init__(self, rate: float):
        size = max(1, int(rate))
        self._window = size / rate
        self._sent: deque[float] = deque(maxlen=size)

    async def take(self) -> None:
        now = time.monotonic()
        if self._sent:
            self._sent[-1] = now  # the previous request is done: FAL has seen it by now
        while len(self._sent) == self._sent.maxlen and now - self._sent[0] < self._window:
            await asyncio.sleep(self._window - (now - self._sent[0]))
            now = time.monotonic()
        self._sent.append(now)


@dataclass
class Poller:
    pool: asyncpg.Pool
    fal: fal_client.AsyncClient
    tracker: Tracker
    webhooks: WebhookReceiver
    metrics: StatusMetrics
    interval: float
    batch: int
    budget: TokenBucket
    generations: GenerationTracker | None = None
    #: The typical durations the time-based estimate divides by (learned, cached).
    durations: TypicalDurations | None = field(default=None)

    def __post_init__(self) -> None:
        if self.durations is None:
            self.durations = TypicalDurations(self.pool)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                polled = await self.poll_once()
                await self.webhooks.sweep()
            except DB_ERRORS as exc:  # a database restart must not end polling for good
                log.warning("poll cycle failed: %s", exc)
                polled = 0
            if polled < self.batch:
                await pause(stop, min(1.0, self.interval))

    async def poll_once(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, self.batch, self.interval)
            jobs = []
            if self.generations is not None:
                jobs = await conn.fetch(_CLAIM_GENERATIONS, self.batch, self.interval)
        for claimed, subject, poll in (
            (rows, "avatar_id", self._poll),
            (jobs, "generation_id", self._poll_generation),
        ):
            for row in claimed:
                await self.budget.take()
                with log_context(**{subject: str(row["id"])}, request_id=row["fal_request_id"]):
                    await poll(row)
        return len(rows) + len(jobs)

    async def _poll(self, row: asyncpg.Record) -> None:
        """A training: its queue position, then its progress while it runs; its outcome
        applied once."""
        request_id = row["fal_request_id"]
        try:
            status, body = await self._status(row, with_logs=True)
            if isinstance(status, fal_client.Completed):
                if status.error_type == CANCELLED_AT_FAL:
                    self.metrics.polls.labels("cancelled").inc()
                    return  # polled again later, until `on_cancelled` finishes the attempt
                logs = format_logs(status.logs or [])
                await self._finish(row, status, body, self.tracker.finish, logs=logs)
                return
        except RequestGone as exc:
            await self._gone(row, exc, self.tracker.finish)
            return
        except _FAL_ERRORS as exc:
            self.metrics.polls.labels(
                "unreadable" if isinstance(exc, UnreadableStatus) else "error"
            ).inc()
            await self._back_off(row, exc)
            return
        if isinstance(status, fal_client.Queued):
            await self.tracker.progress(
                request_id,
                "IN_QUEUE",
                0,
                status.position,
                None,
                {"status": body},
            )
        elif isinstance(status, fal_client.InProgress):
            await self._running(row, status.logs or [], body)
        self.metrics.polls.labels("ok").inc()

    async def _running(self, row: asyncpg.Record, entries: list[Any], body: dict[str, Any]) -> None:
        """A percentage when a log line plainly carries one, else an estimate from the
        time since we first saw it running (`estimate.py`), labelled as such."""
        pct = percent_from_logs(entries)
        eta: int | None = None
        estimated = pct is None
        if pct is None:
            assert self.durations is not None
            typical = await self.durations.seconds(row["fal_endpoint"], row["steps"])
            started = row["training_started_at"]
            elapsed = 0.0 if started is None else (utcnow() - started).total_seconds()
            pct, eta = estimate(elapsed, typical)
        await self.tracker.progress(
            row["fal_request_id"],
            "IN_PROGRESS",
            pct,
            None,
            format_logs(entries),
            {"status": body},
            estimated=estimated,
            eta_seconds=eta,
        )

    async def _poll_generation(self, row: asyncpg.Record) -> None:
        """A generation: queue state while it runs; its outcome applied as a webhook's is."""
        assert self.generations is not None
        request_id = row["fal_request_id"]
        try:
            status, body = await self._status(row, with_logs=False)
            if isinstance(status, fal_client.Completed):
                finish = self.generations.finish
                await self._finish(row, status, body, finish, error_type=status.error_type)
                return
            running = isinstance(status, fal_client.InProgress)
            await self.generations.progress(request_id, "IN_PROGRESS" if running else "IN_QUEUE")
        except RequestGone as exc:
            await self._gone(row, exc, self.generations.finish)
            return
        except (*_FAL_ERRORS, ResultsUnavailable) as exc:
            self.metrics.polls.labels(
                "unreadable" if isinstance(exc, UnreadableStatus) else "error"
            ).inc()
            await self._back_off(row, exc, "generations")
            return
        self.metrics.polls.labels("ok").inc()

    async def _finish(
        self,
        row: asyncpg.Record,
        status: fal_client.Completed,
        body: dict[str, Any],
        finish: Callable[..., Awaitable[bool]],
        **extra: Any,
    ) -> None:
        """A completed job, either kind: FAL's error, or its result (a FAL request too, so
        it waits for the budget), applied by the tracker's `finish` like a webhook's. What
        is stored as FAL's answer is both, whole: `{"status": <status>, "result": <result>}`
        (`status` alone for a failure, whose result FAL refuses to serve)."""
        request_id = row["fal_request_id"]
        if status.error:
            response = {"status": body}
            await finish(
                request_id, ok=False, payload=None, error=status.error, response=response, **extra
            )
        else:
            await self.budget.take()
            try:
                result = dict(await self.fal.result(row["fal_endpoint"], request_id))
            except fal_client.client.FalClientHTTPError as exc:
                if exc.status_code in _GONE:
                    raise RequestGone(
                        f"FAL result expired before it was fetched ({exc.status_code})"
                    ) from exc
                raise
            except _UNREADABLE as exc:  # HTML or an empty body where the result should be
                raise UnreadableStatus(f"unreadable result from FAL: {exc!r}") from exc
            response = {"status": body, "result": result}
            await finish(
                request_id, ok=True, payload=result, error=None, response=response, **extra
            )
        self.metrics.polls.labels("completed").inc()

    async def _gone(
        self, row: asyncpg.Record, exc: RequestGone, finish: Callable[..., Awaitable[bool]]
    ) -> None:
        """FAL no longer holds the request: a refunded failure. What is stored as FAL's
        answer is the HTTP answer it gave (status code and body), not a dict of ours."""
        log.warning("FAL no longer holds %s: %s", row["fal_request_id"], exc)
        cause = exc.__cause__
        response: dict[str, Any] = {}
        if isinstance(cause, fal_client.client.FalClientHTTPError):
            response = {"http_status": cause.status_code, "body": cause.response.text[:4096]}
        await finish(
            row["fal_request_id"], ok=False, payload=None, error=str(exc), response=response
        )
        self.metrics.polls.labels("gone").inc()

    async def _status(
        self, row: asyncpg.Record, *, with_logs: bool
    ) -> tuple[fal_client.Status, dict[str, Any]]:
        """fal-client's reading of the status, and FAL's whole answer (`read_status`)."""
        endpoint, request_id = row["fal_endpoint"], row["fal_request_id"]
        try:
            return await read_status(self.fal, endpoint, request_id, with_logs=with_logs)
        except fal_client.client.FalClientHTTPError as exc:
            if exc.status_code in _GONE and row["poll_count"] >= GONE_AFTER_POLLS:
                raise RequestGone(
                    f"FAL no longer knows the request ({exc.status_code} on status)"
                ) from exc
            raise
        except _UNREADABLE as exc:  # not JSON, or not a status we know
            raise UnreadableStatus(f"unreadable status from FAL: {exc!r}") from exc

    async def _back_off(self, row: asyncpg.Record, exc: Exception, table: str = "avatars") -> None:
        delay = min(300.0, self.interval * 2 ** min(row["poll_count"], 8))
        log.warning("poll of %s failed, next in %.0fs: %s", row["fal_request_id"], delay, exc)
        await self.pool.execute(
            f"UPDATE {table} SET next_poll_at = now() + make_interval(secs => $2),"
            " last_status_check = now() WHERE id = $1",
            row["id"],
            delay,
        )
