"""A training cancelled at FAL is the trainer's to report, never a failure found by polling.

The trainer cancels at FAL, then publishes `TrainingCancelled`; a poll in between used to
report the job as failed (`training.failed`), racing that event — the bot could tell a user
who pressed Cancel that training failed, and the avatar's FAL status stayed `ERROR`."""

from __future__ import annotations

from typing import Any

import fal_client
import pytest

from services.status import poller as poller_module
from services.status.metrics import StatusMetrics
from services.status.poller import CANCELLED_AT_FAL, Poller, TokenBucket


class FakeFal:
    def __init__(self, status: Any):
        self.status_answer = status
        self.results = 0

    async def status(self, endpoint: str, request_id: str, *, with_logs: bool = False) -> Any:
        return self.status_answer

    async def result(self, endpoint: str, request_id: str) -> Any:
        self.results += 1
        return {}


@pytest.fixture(autouse=True)
def _fake_status_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    """The poller reads FAL's whole status answer (`read_status`); here, the fake's."""

    async def read(client: FakeFal, app: str, request_id: str, *, with_logs: bool) -> Any:
        status = await client.status(app, request_id, with_logs=with_logs)
        return status, {"status": "COMPLETED", "error": getattr(status, "error", None)}

    monkeypatch.setattr(poller_module, "read_status", read)


class FakeTracker:
    def __init__(self) -> None:
        self.finished: list[dict[str, Any]] = []

    async def finish(self, request_id: str, **outcome: Any) -> bool:
        self.finished.append({"request_id": request_id, **outcome})
        return True


def _poller(status: Any) -> tuple[Poller, FakeFal, FakeTracker, StatusMetrics]:
    fal, tracker, metrics = FakeFal(status), FakeTracker(), StatusMetrics()
    poller = Poller(
        pool=None,  # type: ignore[arg-type]  # `_poll` of one claimed row needs no pool
        fal=fal,  # type: ignore[arg-type]
        tracker=tracker,  # type: ignore[arg-type]
        webhooks=None,  # type: ignore[arg-type]
        metrics=metrics,
        interval=5.0,
        batch=10,
        budget=TokenBucket(100.0),
    )
    return poller, fal, tracker, metrics


ROW = {"fal_request_id": "req-1", "fal_endpoint": "fal-ai/x", "training_progress": 40}


def _polls(metrics: StatusMetrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("aisha_status_polls_total", {"outcome": outcome})
    return value or 0.0


async def test_a_cancelled_job_is_left_to_the_trainers_event() -> None:
    cancelled = fal_client.Completed(
        logs=[], metrics={}, error="Request was cancelled", error_type=CANCELLED_AT_FAL
    )
    poller, fal, tracker, metrics = _poller(cancelled)
    await poller._poll(ROW)  # type: ignore[arg-type]
    assert tracker.finished == []
    assert fal.results == 0
    assert _polls(metrics, "cancelled") == 1
    assert _polls(metrics, "completed") == 0


@pytest.mark.parametrize("error_type", [None, "internal_error"])
async def test_other_errors_are_still_reported_as_failures(error_type: str | None) -> None:
    failed = fal_client.Completed(logs=[], metrics={}, error="boom", error_type=error_type)
    poller, _, tracker, metrics = _poller(failed)
    await poller._poll(ROW)  # type: ignore[arg-type]
    assert [(f["ok"], f["error"]) for f in tracker.finished] == [(False, "boom")]
    # FAL's answer as it came (a failure's result is refused, so the status alone)
    assert tracker.finished[0]["response"] == {"status": {"status": "COMPLETED", "error": "boom"}}
    assert _polls(metrics, "completed") == 1
