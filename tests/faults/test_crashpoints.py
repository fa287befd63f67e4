"""kill -9 at each dangerous moment (crash points), restart, and every flow still finishes.

One product serves the module. Each scenario restarts one service with one crash point
armed (`AISHA_CRASHPOINTS`); the process dies with exit 137 the first time it gets there,
the watchdog restarts it without the crash point, and the users' trainings must all end
with the bot saying "ready" — FAL paid once per attempt, nothing left in an outbox or a
consumer, nothing dead-lettered, each user shown "ready" on one message.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.faults.conftest import Product
from tests.faults.flows import Flow, drained, seed, settle, start

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]

SCENARIOS = [
    # (crash point, service it is armed in)
    ("trainer.after_fal_submit", "trainer"),  # orphan: FAL has the job, the ledger does not
    ("trainer.after_commit", "trainer"),
    ("status.after_webhook_recorded", "status"),
    ("status.before_finish_commit", "status"),
    ("bot.after_training_request_commit", "bot"),
    ("outbox.after_publish_before_mark", "trainer"),
    ("consumer.after_handler_before_ack", "bot"),
]
FLOWS = 3


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("point", "service"), SCENARIOS, ids=[p for p, _ in SCENARIOS])
async def test_kill_at_crash_point_then_every_flow_finishes(
    shared: Product, point: str, service: str
) -> None:
    p = shared
    await p.services.rearm(service, point)
    exits_before = len(p.services.exits)
    flows = [await seed(p.db_url, p.js, p.telegram) for _ in range(FLOWS)]
    # The first flow walks into the crash point alone; the others start once the process
    # is back, so the crash hits a known moment of a known flow.
    await start(p.db_url, p.telegram, flows[0])
    deadline = asyncio.get_running_loop().time() + 30
    while p.services.crashed_at(point) == 0:
        assert asyncio.get_running_loop().time() < deadline, f"{point} never fired"
        await asyncio.sleep(0.1)
    await p.services.wait_ready(service)
    await asyncio.gather(*(start(p.db_url, p.telegram, f) for f in flows[1:]))
    outcome = await settle(p.db_url, p.telegram, p.fal, flows, within=60)
    print(outcome.line(f"crash:{point}", 0))
    assert p.services.exits[exits_before:] == [(service, 137)]
    assert outcome.lost == 0
    assert outcome.duplicated == 0
    assert outcome.misbilled == 0
    assert outcome.ready_messages_max == 1  # the documented bound: "ready" on one message
    await drained(p.db_url, p.js, p.dead_letters)
    if point == "trainer.after_fal_submit":
        await assert_adopted(p, flows[0])


async def assert_adopted(p: Product, flow: Flow) -> None:
    """The orphan was adopted from its webhook, not submitted again."""
    assert await p.services.metric("trainer", "aisha_trainer_orphans_total", outcome="adopted")
    assert await p.services.metric(
        "status", "aisha_status_webhooks_total", outcome="orphan_pending"
    )
    conn = await asyncpg.connect(p.db_url)
    try:
        row = await conn.fetchrow(
            "SELECT a.finetune_comment, s.state, s.request_id = a.fal_request_id AS same"
            " FROM avatars a JOIN fal_submissions s ON s.subject_id = a.id WHERE a.id = $1",
            flow.avatar_id,
        )
    finally:
        await conn.close()
    assert row is not None
    assert "adopted after a crash" in row["finetune_comment"]
    assert (row["state"], row["same"]) == ("submitted", True)
