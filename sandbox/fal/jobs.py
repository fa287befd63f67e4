"""Queue jobs on a (scalable) clock: IN_QUEUE → IN_PROGRESS with logs → COMPLETED."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.fal.faults import FaultRule

IN_QUEUE, IN_PROGRESS, COMPLETED = "IN_QUEUE", "IN_PROGRESS", "COMPLETED"


class Clock:
    """Scales every emulator delay: `time_scale=0.01` runs a 90 s training in 0.9 s."""

    def __init__(self, time_scale: float = 1.0) -> None:
        self.time_scale = time_scale

    def seconds(self, nominal: float) -> float:
        return max(0.0, nominal * self.time_scale)

    async def sleep(self, nominal: float) -> None:
        await asyncio.sleep(self.seconds(nominal))


class JobFailure(Exception):
    """The app failed the request; `detail` is FAL's error body `detail`."""

    def __init__(self, status: int, detail: Any, error_type: str, message: str | None = None):
        super().__init__(message or str(detail))
        self.status = status
        self.detail = detail
        self.error_type = error_type
        self.message = message or f"Invalid status code: {status}"


def validation_error(loc: list[str], msg: str, type_: str) -> JobFailure:
    return JobFailure(422, [{"loc": loc, "msg": msg, "type": type_}], "validation_error")


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


_SEQ = itertools.count(1)


@dataclass(slots=True)
class Job:
    """One queued request and everything it went through."""

    app_id: str
    arguments: dict[str, Any]
    webhook_url: str | None = None
    faults: dict[str, FaultRule] = field(default_factory=dict)
    #: The lifetime the submit asked for its output files (seconds), None: not asked.
    output_lifetime: float | None = None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    seq: int = field(default_factory=lambda: next(_SEQ))
    state: str = IN_QUEUE
    submitted_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    failure: JobFailure | None = None
    cancelled: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def succeeded(self) -> bool:
        return self.state == COMPLETED and self.failure is None and not self.cancelled

    def log(self, message: str, level: str = "INFO") -> None:
        self.logs.append(
            {"message": message, "level": level, "source": "user", "timestamp": _iso(time.time())}
        )

    def fail(self, failure: JobFailure) -> None:
        self.failure = failure
        self.log(f"Error: {failure.message}", "ERROR")

    def as_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "app_id": self.app_id,
            "arguments": self.arguments,
            "webhook_url": self.webhook_url,
            "faults": sorted(self.faults),
            "state": self.state,
            "submitted_at": self.submitted_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "logs": self.logs,
            "result": self.result,
            "error": None if self.failure is None else self.failure.message,
            "error_type": None if self.failure is None else self.failure.error_type,
            "cancelled": self.cancelled,
        }


class JobRunner:
    """Runs jobs as asyncio tasks with a concurrency limit; all cancellable on stop()."""

    def __init__(
        self,
        clock: Clock,
        execute: Callable[[Job], Awaitable[dict[str, Any]]],
        on_done: Callable[[Job], None],
        *,
        concurrency: int = 2,
        queue_seconds: float = 2.0,
    ) -> None:
        self._clock = clock
        self._execute = execute
        self._on_done = on_done
        self._slots = asyncio.Semaphore(concurrency)
        self._queue_seconds = queue_seconds
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.jobs: dict[str, Job] = {}

    def submit(self, job: Job) -> None:
        self.jobs[job.request_id] = job
        self._tasks[job.request_id] = asyncio.create_task(self._run(job), name=f"fal-job-{job.seq}")

    def queue_position(self, job: Job) -> int:
        return sum(1 for j in self.jobs.values() if j.state == IN_QUEUE and j.seq < job.seq)

    async def _run(self, job: Job) -> None:
        try:
            await self._clock.sleep(self._queue_seconds)
            async with self._slots:
                job.state = IN_PROGRESS
                job.started_at = time.time()
                try:
                    job.result = await self._execute(job)
                except JobFailure as failure:
                    job.fail(failure)
            self._finish(job)
        except asyncio.CancelledError:
            if job.cancelled:
                self._finish(job)
            raise
        finally:
            self._tasks.pop(job.request_id, None)

    def _finish(self, job: Job) -> None:
        job.state = COMPLETED
        job.finished_at = time.time()
        job.done.set()
        self._on_done(job)

    def cancel(self, job: Job) -> bool:
        """Cancel a queued or running job; False when it already completed."""
        task = self._tasks.get(job.request_id)
        if job.state == COMPLETED or task is None:
            return False
        job.cancelled = True
        # FAL's own SDK ends a cancelled run with 499 ("client closed request").
        job.failure = JobFailure(
            499, "Request was cancelled", "request_cancelled", "Request was cancelled"
        )
        task.cancel()
        return True

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
