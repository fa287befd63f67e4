"""Every documented FAL outcome, run through the whole product (docs/fal-outcomes.md).

One case per row of the table: the FAL emulator is switched to answer that way, a user
starts (and in the cancel cases, cancels) a training in the Telegram emulator, and the test
checks the three things the table promises — what the user was told, what the credits
ledger holds (one charge, one refund when the end was not the user's doing), and what the
avatar row holds (the bot's `status`, the status service's `fal_status` / `training_error`).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from sandbox.fal import FalEmulator
from services.bot.training.callbacks import TrainingCb
from tests.faults.conftest import Product
from tests.faults.flows import (
    FAILED,
    READY,
    TRAINING_PRICE,
    Flow,
    _press,
    avatar_status,
    fal_jobs_per_key,
    seed,
    start,
    told,
)

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]

CANCELLED = "was cancelled."
REJECTED = "could not use these photos."
FAL_ERROR = "reported an error."
REFUNDED = "credits are back"


@dataclass(frozen=True)
class Case:
    """One outcome: the faults armed, whether the user cancels, and what must follow."""

    name: str
    #: (fault, parameters); `op` in the parameters makes it an HTTP fault.
    faults: list[tuple[str, dict[str, Any]]]
    status: str  # the bot's avatar status at the end
    told: str  # a fragment of the final message
    refunded: bool
    fal_status: str | None = None
    error_has: str | None = None
    cancel: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    jobs: int = 1  # FAL jobs for the attempt's key


CASES = [
    Case(
        "failed_completed_with_error",
        [("job_failed", {"message": "runner disconnected", "status": 503,
                         "error_type": "runner_disconnected"})],
        "error", FAL_ERROR, True, "ERROR", "runner disconnected",
    ),
    Case(
        "submit_422_detail_list",
        [("http_error", {"op": "submit", "status": 422, "detail": [
            {"loc": ["body", "steps"], "msg": "must be <= 10000", "type": "value_error"}]})],
        "error", REJECTED, True, error_has="body.steps: must be <= 10000", jobs=0,
    ),
    Case(
        "submit_422_detail_string",
        [("http_error", {"op": "submit", "status": 422, "detail": "images_data_url unreadable"})],
        "error", REJECTED, True, error_has="images_data_url unreadable", jobs=0,
    ),
    Case(
        "submit_503_error_type",
        [("http_error", {"op": "submit", "status": 503,
                         "error_type": "runner_scheduling_failure"})],
        "completed", READY, False, "COMPLETED",
    ),
    Case(
        "submit_answers_html",
        [("http_error", {"op": "submit", "status": 200, "body": "html", "after": True})],
        "completed", READY, False, "COMPLETED",
    ),
    Case(
        "submit_answers_empty",
        [("http_error", {"op": "submit", "status": 200, "body": "empty", "after": True})],
        "completed", READY, False, "COMPLETED",
    ),
    Case(
        "status_unknown_name",
        [("webhook_lost", {}), ("status_unknown", {"op": "status", "status": "SCHEDULED"})],
        "completed", READY, False, "COMPLETED",
    ),
    Case(
        "status_unknown_fields",
        [("webhook_lost", {}), ("status_unknown", {"op": "status", "status": "IN_PROGRESS",
                                                   "fields": {"logs": [], "eta": 3}})],
        "completed", READY, False, "COMPLETED",
    ),
    Case(
        "result_expired_no_webhook",
        [("webhook_lost", {}), ("result_expired", {"seconds": 0})],
        "error", FAL_ERROR, True, "ERROR", "expired",
    ),
    Case(
        "request_gone_no_webhook",
        [("webhook_lost", {}), ("result_expired", {"seconds": 0, "status_404": True})],
        "error", FAL_ERROR, True, "ERROR", "no longer knows",
    ),
    Case("cancel_202", [], "cancelled", CANCELLED, False, "CANCELLED", cancel=True),
    Case(
        "cancel_202_ends_499_with_webhook",
        [], "cancelled", CANCELLED, False, "CANCELLED", cancel=True,
        settings={"cancel_webhook": True},
    ),
    Case(
        "cancelled_run_finishes_with_webhook",
        [("cancel_ignored", {})], "cancelled", CANCELLED, False, "CANCELLED", cancel=True,
    ),
    Case(
        "cancelled_run_finishes_without_webhook",
        [("cancel_ignored", {}), ("webhook_lost", {})],
        "cancelled", CANCELLED, False, "CANCELLED", cancel=True,
    ),
    Case(
        "cancel_400_already_completed",
        [("http_error", {"op": "cancel", "status": 400,
                         "body": {"status": "ALREADY_COMPLETED"}})],
        "completed", READY, False, "COMPLETED", cancel=True,
    ),
    Case(
        "cancel_404_not_found",
        [("http_error", {"op": "cancel", "status": 404, "detail": "Request not found"})],
        "cancelled", CANCELLED, False, "CANCELLED", cancel=True,
    ),
]  # fmt: skip


async def _row(db_url: str, avatar_id: uuid.UUID) -> dict[str, Any]:
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow(
            "SELECT status::text, fal_status, training_error, diffusers_lora_file_url"
            " FROM avatars WHERE id = $1",
            avatar_id,
        )
        submit_error = await conn.fetchval(
            "SELECT error FROM fal_submissions WHERE subject_id = $1", avatar_id
        )
        ledger = await conn.fetch(
            "SELECT kind::text, amount FROM credit_entries WHERE user_id = (SELECT user_id"
            " FROM avatars WHERE id = $1) AND kind IN ('training_charge', 'refund')"
            " ORDER BY seq",
            avatar_id,
        )
    finally:
        await conn.close()
    assert row is not None
    return {
        **dict(row),
        "submit_error": submit_error,
        "ledger": [(r["kind"], r["amount"]) for r in ledger],
    }


async def _job_reaches(fal: FalEmulator, flow: Flow, state: str, within: float) -> None:
    """Wait until FAL's job for the flow is in `state` (or past it)."""
    order = ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        jobs = [j for j in fal.jobs if flow.trigger in json.dumps(j.arguments)]
        if jobs and order.index(jobs[-1].state) >= order.index(state):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{flow.name}: FAL's job never reached {state}")


async def _cancel_while_running(p: Product, flow: Flow) -> None:
    """Press Cancel once FAL runs the job (so FAL, not our ledger, answers the cancel)."""
    await _job_reaches(p.fal, flow, "IN_PROGRESS", within=20)
    data = TrainingCb(action="cancel", avatar_id=flow.avatar_id).pack()
    assert await _press(p.telegram, flow.uid, data, within=10.0), "no Cancel button shown"


def _arm(fal: FalEmulator, case: Case, flow: Flow) -> list[int]:
    rules = []
    for name, params in case.faults:
        params = dict(params)
        op = params.pop("op", None)
        match = {"op": op} if op is not None else {"contains": flow.trigger}
        rules.append(fal.add_fault(name, times=1, **match, **params).id)
    return rules


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_fal_outcome(shared: Product, case: Case) -> None:
    p = shared
    flow = await seed(p.db_url, p.js, p.telegram)
    rules = _arm(p.fal, case, flow)
    p.fal.configure(training_seconds=6.0 if case.cancel else 2.0, **case.settings)
    try:
        await start(p.db_url, p.telegram, flow)
        if case.cancel:
            await _cancel_while_running(p, flow)
        deadline = asyncio.get_running_loop().time() + 60
        while asyncio.get_running_loop().time() < deadline:
            if await avatar_status(p.db_url, flow.avatar_id) == case.status and told(
                p.telegram, flow, case.told
            ):
                break
            await asyncio.sleep(0.3)
        if case.cancel:  # whatever FAL still sends after the cancel must change nothing
            await _job_reaches(p.fal, flow, "COMPLETED", within=20)
            await asyncio.sleep(2.0)
    finally:
        p.fal.configure(training_seconds=2.0, cancel_webhook=False)
        for rule in rules:
            p.fal.faults.remove(rule)

    row = await _row(p.db_url, flow.avatar_id)
    assert row["status"] == case.status, row
    assert told(p.telegram, flow, case.told) == 1
    end = {"completed": READY, "error": FAILED, "cancelled": CANCELLED}[case.status]
    for fragment in (READY, FAILED, CANCELLED):  # one end, told once, and no other
        assert told(p.telegram, flow, fragment) == (fragment == end), fragment
    expected = [("training_charge", -TRAINING_PRICE)]
    if case.refunded:
        expected.append(("refund", TRAINING_PRICE))
    assert row["ledger"] == expected
    assert (told(p.telegram, flow, REFUNDED) > 0) is case.refunded
    assert row["fal_status"] == case.fal_status
    if case.error_has is not None:  # the status service's column, or the trainer's ledger
        assert case.error_has in (row["training_error"] or row["submit_error"] or ""), row
    if case.status == "completed":
        assert row["diffusers_lora_file_url"]
    assert fal_jobs_per_key(p.fal)[flow.key] == case.jobs
