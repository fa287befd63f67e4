"""FAL's end-of-request behaviours the emulator follows: result retention and cancels.

Documented (docs: inference-api/queue): a result is kept 1 hour after completion, 6 minutes
when it is 10 KB or larger; cancel answers `CANCELLATION_REQUESTED` (202), `ALREADY_COMPLETED`
(400) or `NOT_FOUND` (404); a running request only gets a signal and its app may run to the
end. *Assumed* (undocumented), hence switchable: whether a webhook follows a cancelled run
(`cancel_webhook`, default off), and that a request past its retention answers 404 on the
result route (and, with `expired_status_404`, on the status route too).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from sandbox.fal.jobs import Clock, Job

#: A result this large (its JSON) is kept the short time (docs: inference-api/queue/result).
LARGE_RESULT_BYTES = 10 * 1024
#: The status code a cancelled run ends with in FAL's own SDK ("client closed request").
CANCELLED_STATUS = 499


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(slots=True)
class Outcomes:
    """The switches; env `FAL_EMU_CANCEL_WEBHOOK`, `FAL_EMU_EXPIRED_STATUS_404`."""

    result_retention_seconds: float = 3600.0
    result_retention_large_seconds: float = 360.0
    cancel_webhook: bool = False
    expired_status_404: bool = False

    @classmethod
    def from_env(cls) -> Outcomes:
        return cls(
            cancel_webhook=_flag("FAL_EMU_CANCEL_WEBHOOK"),
            expired_status_404=_flag("FAL_EMU_EXPIRED_STATUS_404"),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "result_retention_seconds": self.result_retention_seconds,
            "result_retention_large_seconds": self.result_retention_large_seconds,
            "cancel_webhook": self.cancel_webhook,
            "expired_status_404": self.expired_status_404,
        }

    def configure(self, key: str, value: Any) -> bool:
        """Apply one setting; False when `key` is not one of these."""
        if key in ("result_retention_seconds", "result_retention_large_seconds"):
            setattr(self, key, float(value))
        elif key in ("cancel_webhook", "expired_status_404"):
            setattr(self, key, bool(value))
        else:
            return False
        return True

    def retention(self, job: Job, clock: Clock) -> float:
        """Real seconds the job's result is kept after completion (a `result_expired` fault
        sets its own)."""
        rule = job.faults.get("result_expired")
        if rule is not None:
            return clock.seconds(float(rule.param("seconds", 0.0)))
        size = len(json.dumps(job.result if job.result is not None else {}, default=str))
        nominal = (
            self.result_retention_large_seconds
            if size >= LARGE_RESULT_BYTES
            else self.result_retention_seconds
        )
        return clock.seconds(nominal)

    def expired(self, job: Job, clock: Clock) -> bool:
        if job.finished_at is None:
            return False
        return time.time() >= job.finished_at + self.retention(job, clock)

    def status_gone(self, job: Job, clock: Clock) -> bool:
        """Whether the status route answers 404 for this job (assumed; see the module doc)."""
        rule = job.faults.get("result_expired")
        status_too = bool(rule.param("status_404", False)) if rule is not None else False
        return (self.expired_status_404 or status_too) and self.expired(job, clock)

    @staticmethod
    def ignores_cancel(job: Job) -> bool:
        """A `cancel_ignored` job: the cancel is accepted (202) and the app runs to its end."""
        return "cancel_ignored" in job.faults
