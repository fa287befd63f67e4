"""Poison events: a body that is not an event, and an event no handler can ever accept.

Both must end in the dead-letter subject once — delivered once, the dead-letter metric
counting them, the consumer not spinning on them — and the loop must keep serving the
users' trainings afterwards.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from contracts import TrainingCompleted, encode, new_event_id, utcnow
from contracts.jetstream import BOT_TRAINING, STREAM_DLQ
from contracts.registry import dead_letter_subject
from tests.faults.conftest import Product
from tests.faults.flows import Outcome, drained, seed, settle, start

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]
SUBJECT = TrainingCompleted.subject
DEAD = "aisha_bot_dead_letters_total"


async def dead_lettered(p: Product, reason: str) -> float:
    return await p.services.metric("bot", DEAD, subject=SUBJECT, reason=reason)


@pytest.mark.timeout(90)
async def test_poison_events_are_dead_lettered_once_and_the_loop_goes_on(shared: Product) -> None:
    p = shared
    before = {r: await dead_lettered(p, r) for r in ("malformed", "rejected")}
    info = await p.js.consumer_info(BOT_TRAINING.stream, BOT_TRAINING.durable)
    redelivered_before = info.num_redelivered or 0
    malformed = b'{"type": "training.completed", "avatar_id": '  # cut off mid-document
    await p.js.publish(SUBJECT, malformed, headers={"Nats-Msg-Id": f"poison-{uuid.uuid4()}"})
    impossible = TrainingCompleted(
        event_id=new_event_id(),
        occurred_at=utcnow(),
        avatar_id="not-an-avatar-id",
        user_id=1,
        attempt=1,
        request_id="req",
        lora_url="https://v3.fal.media/files/x.safetensors",
    )
    await p.js.publish(SUBJECT, encode(impossible), headers={"Nats-Msg-Id": impossible.event_id})
    p.dead_letters += 2
    deadline = asyncio.get_running_loop().time() + 20
    while (await dead_lettered(p, "malformed"), await dead_lettered(p, "rejected")) != (
        before["malformed"] + 1,
        before["rejected"] + 1,
    ):
        assert asyncio.get_running_loop().time() < deadline, "poison never dead-lettered"
        await asyncio.sleep(0.2)
    await asyncio.sleep(2.0)  # a hot loop would show more deliveries and dead letters now
    assert await dead_lettered(p, "malformed") == before["malformed"] + 1
    assert await dead_lettered(p, "rejected") == before["rejected"] + 1
    info = await p.js.consumer_info(BOT_TRAINING.stream, BOT_TRAINING.durable)
    redelivered = (info.num_redelivered or 0) - redelivered_before
    assert redelivered == 0  # each delivered exactly once
    reasons = await dlq_reasons(p)
    assert reasons.count("malformed") >= 1
    assert reasons.count("rejected") >= 1

    flow = await seed(p.db_url, p.js, p.telegram)  # and the loop still serves users
    await start(p.db_url, p.telegram, flow)
    outcome = await settle(p.db_url, p.telegram, p.fal, [flow], within=45)
    # Counted: the two poison events (done = dead-lettered once) and the user's flow.
    line = Outcome(started=3, completed=3 - outcome.lost, lost=outcome.lost, duplicated=redelivered)
    print(line.line("poison_event", 0))
    assert outcome.lost == 0
    await drained(p.db_url, p.js, p.dead_letters)


async def dlq_reasons(p: Product) -> list[str]:
    """The `Aisha-Reason` header of every message on the dead-letter subject."""
    sub = await p.js.pull_subscribe(
        dead_letter_subject(SUBJECT), durable=None, stream=STREAM_DLQ.name
    )
    reasons: list[str] = []
    try:
        for msg in await sub.fetch(50, timeout=2.0):
            reasons.append((msg.headers or {}).get("Aisha-Reason", ""))
            await msg.ack()
    finally:
        await sub.unsubscribe()
    return reasons
