"""How the trainer's gateway reads each documented FAL answer (docs/fal-outcomes.md):
422 with `detail` a list or a string is the input's fault, a 5xx with `X-Fal-Error-Type` may
pass, a 2xx that is not FAL's JSON (HTML, empty) may have queued a job, and a cancel's
answers 202 / 400 `ALREADY_COMPLETED` / 404 are outcomes, not errors. Real fal-client
against the FAL emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from sandbox.fal import FalEmulator
from sandbox.fal.images import training_archive
from services.trainer.fal_gateway import (
    CancelOutcome,
    FalGateway,
    FalOutcomeUnknown,
    FalRejected,
    FalRetryable,
)
from services.trainer.lifetimes import TRAINING_OUTPUT_SECONDS

APP = "fal-ai/flux-lora-fast-training"
ARGS = {"images_data_url": "https://v3.fal.media/files/a/b.zip"}
HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture
async def emu(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FalEmulator]:
    async with FalEmulator(training_seconds=30, queue_seconds=0, min_training_images=1) as emulator:
        for key, value in emulator.client_env().items():
            monkeypatch.setenv(key, value)
        yield emulator


@pytest.mark.parametrize(
    ("params", "raised", "says"),
    [
        (
            {"status": 422, "detail": [{"loc": ["body", "steps"], "msg": "too many", "type": "v"}]},
            FalRejected,
            "422: body.steps: too many",
        ),
        ({"status": 422, "detail": "unusable archive"}, FalRejected, "422: unusable archive"),
        (
            {"status": 503, "error_type": "runner_scheduling_failure"},
            FalRetryable,
            "503 runner_scheduling_failure",
        ),
        ({"status": 200, "body": "html", "after": True}, FalOutcomeUnknown, "unreadable"),
        ({"status": 200, "body": "empty", "after": True}, FalOutcomeUnknown, "unreadable"),
    ],
    ids=["422-list", "422-string", "503-error-type", "html", "empty"],
)
async def test_submit_errors_are_sorted_by_whose_fault(
    emu: FalEmulator, params: dict[str, Any], raised: type[Exception], says: str
) -> None:
    emu.add_fault("http_error", op="submit", times=1, **params)
    gateway = FalGateway("id:secret")
    with pytest.raises(raised) as caught:
        await gateway.submit(APP, ARGS, HOOK, output_lifetime_seconds=TRAINING_OUTPUT_SECONDS)
    assert says in str(caught.value)
    if raised is FalRejected:
        assert not isinstance(caught.value, FalRetryable)


async def test_cancel_answers_are_outcomes(emu: FalEmulator) -> None:
    gateway = FalGateway("id:secret")
    archive = emu.put_file(training_archive(1), "application/zip", "a.zip")
    args = {"images_data_url": archive, "trigger_word": "ohwx"}
    running = await gateway.submit(APP, args, HOOK, output_lifetime_seconds=TRAINING_OUTPUT_SECONDS)
    assert await gateway.cancel(APP, running) is CancelOutcome.REQUESTED
    emu.add_fault("http_error", op="cancel", times=1, status=400,
                  body={"status": "ALREADY_COMPLETED"})  # fmt: skip
    assert await gateway.cancel(APP, running) is CancelOutcome.ALREADY_COMPLETED
    assert await gateway.cancel(APP, "no-such-request") is CancelOutcome.NOT_FOUND
    emu.add_fault("http_error", op="cancel", times=1, status=401)
    with pytest.raises(FalRejected):
        await gateway.cancel(APP, running)
