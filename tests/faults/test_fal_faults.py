"""FAL misbehaving: errors and hangs on its HTTP API, webhooks lost, late, doubled,
reordered, forged or stale, and a job that fails.

Every flow gets one webhook fault of its own (matched by its trigger word in the job's
input); the HTTP faults hit whichever request comes first. Whatever FAL does, each user
ends with "ready" (the failed job's user with "failed" and a retry button), and each
attempt is one job at FAL: a submit FAL refused is retried, a lost webhook is replaced
by polling, a forged one is refused, a duplicate changes nothing.

Every webhook goes out in 256-byte segments 20 ms apart (`WEBHOOK_SEGMENTING`), as a real
network may deliver it: no genuine webhook may be refused, and `forged` counts exactly the
deliveries FAL (the emulator) signed with a wrong key.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.faults.conftest import WEBHOOK_SEGMENTING, Product
from tests.faults.flows import Flow, drained, seed, settle, start

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]

#: One webhook fault per flow: (fault name, its parameters).
JOB_FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("webhook_lost", {}),
    ("webhook_duplicate", {}),
    ("webhook_late", {"seconds": 4}),
    ("webhook_out_of_order", {"seconds": 3}),
    ("webhook_bad_signature", {}),
    ("webhook_stale_timestamp", {}),
    ("job_failed", {"message": "CUDA out of memory"}),
]
#: FAL's HTTP API: (fault, operation, times, parameters), armed before the flows start.
SUBMIT_FAULTS: list[tuple[str, str, int, dict[str, Any]]] = [
    ("http_error", "submit", 2, {"status": 500}),  # refused: the trainer retries later
    ("http_error", "submit", 3, {"status": 429, "retry_after": 1}),  # fal-client retries
    ("hang", "submit", 1, {"seconds": 2}),  # slow, but inside the client's timeout
]
#: ... and once the jobs have been polled a while (a backoff must follow failures, not age).
POLL_FAULTS: list[tuple[str, str, int, dict[str, Any]]] = [
    ("http_error", "status", 3, {"status": 500}),  # the poller backs off
    ("hang", "status", 1, {"seconds": 2}),
    ("http_error", "result", 2, {"status": 500}),
]


@pytest.mark.timeout(150)
async def test_fal_faults_every_flow_ends_and_is_paid_once(shared: Product) -> None:
    p = shared
    first_delivery, refused_before = len(p.fal.webhook_deliveries), await refusals(p)
    flows = [await seed(p.db_url, p.js, p.telegram) for _ in JOB_FAULTS]
    for flow, (fault, params) in zip(flows, JOB_FAULTS, strict=True):
        p.fal.add_fault(fault, contains=flow.trigger, times=1, **params)
    rules = [
        p.fal.add_fault(fault, op=op, times=times, **params)
        for fault, op, times, params in SUBMIT_FAULTS
    ]
    failing = frozenset({flows[-1].trigger})
    p.fal.configure(training_seconds=6.0)
    try:
        await asyncio.gather(*(start(p.db_url, p.telegram, f) for f in flows))
        await asyncio.sleep(3.0)  # every running job has been polled several times
        rules += [
            p.fal.add_fault(fault, op=op, times=times, **params)
            for fault, op, times, params in POLL_FAULTS
        ]
        outcome = await settle(p.db_url, p.telegram, p.fal, flows, within=25, failing=failing)
    finally:
        p.fal.configure(training_seconds=2.0)
    print(outcome.line("fal_faults", 0))
    assert outcome.lost == 0
    assert outcome.duplicated == 0
    assert outcome.misbilled == 0
    assert outcome.failed_told == 1
    assert outcome.ready_messages_max == 1
    leftover = [r.name for r in p.fal.faults.rules]
    assert leftover == [], f"faults never hit: {leftover} (hits {[r.hits for r in rules]})"
    webhooks = "aisha_status_webhooks_total"
    assert await p.services.metric("status", webhooks, outcome="forged") >= 1
    assert await p.services.metric("status", webhooks, outcome="stale") >= 1

    async def repeats() -> float:
        replays = await p.services.metric("status", webhooks, outcome="replay")
        return replays + await p.services.metric("status", webhooks, outcome="duplicate")

    for _ in range(50):  # a late second copy may still be on its way (15 s at most)
        if await repeats() >= 2:
            break
        await asyncio.sleep(0.3)
    assert await repeats() >= 2  # the duplicate's and the out-of-order one's second copies
    await genuine_webhooks_all_accepted(p, flows, first_delivery, refused_before)
    await drained(p.db_url, p.js, p.dead_letters)


REFUSALS = ("forged", "truncated", "read_timeout", "too_large", "malformed")
#: Genuine deliveries each flow's fault makes (default 1; forged and stale are not genuine).
GENUINE_DELIVERIES = {
    "webhook_lost": 0,
    "webhook_duplicate": 2,
    "webhook_out_of_order": 2,
    "webhook_bad_signature": 0,
    "webhook_stale_timestamp": 0,
}


async def refusals(p: Product) -> dict[str, float]:
    """The status service's refusals so far, by reason."""
    family = "aisha_status_webhooks_total"
    return {r: await p.services.metric("status", family, outcome=r) for r in REFUSALS}


async def genuine_webhooks_all_accepted(
    p: Product, flows: list[Flow], first: int, before: dict[str, float]
) -> None:
    """Genuine webhooks refused = 0 (each body delivered in segments); the status service
    refused as forged exactly the deliveries signed with a wrong key, and nothing else."""
    assert p.fal.settings()["webhook_segment_bytes"] == WEBHOOK_SEGMENTING.size
    ours = {
        job.request_id
        for job in p.fal.jobs
        if any(f.trigger in json.dumps(job.arguments) for f in flows)
    }
    suspect = {"webhook_bad_signature", "webhook_stale_timestamp"}
    expected = sum(GENUINE_DELIVERIES.get(fault, 1) for fault, _ in JOB_FAULTS)
    for _ in range(100):  # a late or replayed copy may still be on its way
        window = p.fal.webhook_deliveries[first:]
        genuine = [d for d in window if d.request_id in ours and not suspect & set(d.faults)]
        answered = [d for d in genuine if d.status is not None or d.error is not None]
        if len(answered) >= expected:
            break
        await asyncio.sleep(0.2)
    long = [d for d in answered if len(d.body) > WEBHOOK_SEGMENTING.size]
    refused = [(d.request_id, d.status, d.error) for d in answered if not d.ok]
    print(f"fal_faults webhooks: {len(answered)} genuine, {len(long)} segmented, refused {refused}")
    assert len(answered) == expected
    assert len(long) >= expected - 1  # all but the failed job's short ERROR body
    assert refused == []
    after = await refusals(p)
    forged = [d for d in window if "webhook_bad_signature" in d.faults]
    forged_answered = [d for d in forged if d.status is not None]
    assert forged_answered
    # FAL retries a refused delivery: one may be on its way while we count.
    assert len(forged_answered) <= after["forged"] - before["forged"] <= len(forged)
    assert {r: after[r] - before[r] for r in REFUSALS[1:]} == dict.fromkeys(REFUSALS[1:], 0.0)
