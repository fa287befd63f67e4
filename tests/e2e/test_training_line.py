"""Our own line for training slots, end to end: with `TRAINER_MAX_CONCURRENT=1` and three
trainings requested at once, the second and third wait (each told its place), none is
failed for waiting, and all three complete one after another. Real trainer and status
processes, real NATS and PostgreSQL, fal-client against the FAL emulator."""

from __future__ import annotations

import asyncio
import itertools
import uuid

import asyncpg
import nats
import pytest

import contracts
from sandbox.fal import FalEmulator
from tests.e2e import services
from tests.e2e.test_training_flow import _request, _seed_avatar

pytestmark = pytest.mark.e2e

js, stack = services.js, services.stack


@pytest.fixture
def stack_overrides() -> dict[str, str]:
    return {"TRAINER_MAX_CONCURRENT": "1", "TRAINER_WAITING_LINE_SECONDS": "0.3"}


@pytest.fixture
async def fal():
    emulator = FalEmulator(training_seconds=2.0, queue_seconds=0.2, generation_seconds=0.5)
    await emulator.start()
    yield emulator
    await emulator.stop()


async def test_three_trainings_on_one_slot_wait_in_line_and_all_complete(
    stack, js, db_url: str, fal: FalEmulator
) -> None:
    sub = await js._nc.subscribe("aisha.training.>")
    avatars: list[str] = []
    for n in range(3):
        avatar_id, user_id = await _seed_avatar(db_url, js, "style")
        avatars.append(avatar_id)
        await _request(js, avatar_id, user_id, f"TOKline{n}")
        await asyncio.sleep(0.3)  # a definite order of arrival
    events: list[contracts.Event] = []
    done: set[str] = set()
    deadline = asyncio.get_running_loop().time() + 90
    while len(done) < 3 and asyncio.get_running_loop().time() < deadline:
        try:
            msg = await sub.next_msg(timeout=1.0)
        except nats.errors.TimeoutError:
            continue
        event = contracts.decode(msg.subject, msg.data)
        if getattr(event, "avatar_id", None) not in avatars:
            continue
        events.append(event)
        assert not isinstance(event, contracts.TrainingFailed), event
        if isinstance(event, contracts.TrainingCompleted):
            done.add(event.avatar_id)
    await sub.unsubscribe()
    assert done == set(avatars), [type(e).__name__ for e in events]

    def places(avatar_id: str) -> list[int]:
        return [
            e.ahead
            for e in events
            if isinstance(e, contracts.TrainingWaiting) and e.avatar_id == avatar_id
        ]

    assert places(avatars[0]) == []  # the free slot: straight to FAL
    assert places(avatars[1]) == [0]
    assert places(avatars[2]) == [1, 0]  # told its place, then told it moved up

    def index(kind: type, avatar_id: str) -> int:
        return next(
            i for i, e in enumerate(events) if isinstance(e, kind) and e.avatar_id == avatar_id
        )

    for before, after in itertools.pairwise(avatars):
        # One slot: the next one reaches FAL only once the previous one has finished.
        assert index(contracts.TrainingCompleted, before) < index(
            contracts.TrainingSubmitted, after
        )
    conn = await asyncpg.connect(db_url)
    try:
        states = await conn.fetch(
            "SELECT state, request FROM fal_submissions WHERE subject_id = ANY($1)",
            [uuid.UUID(a) for a in avatars],
        )
    finally:
        await conn.close()
    assert sorted(r["state"] for r in states) == ["submitted"] * 3
    assert all(r["request"] is None for r in states)  # the waiting copy is dropped on release
    assert len(fal.jobs) == 3  # each once: waiting never submitted twice
