"""Production NATS shape: a 3-node cluster with R3 streams survives losing its stream leader.

Trainer and status run as processes against all three servers (`NATS_STREAM_REPLICAS=3`).
Several trainings are requested; once the first is submitted, the node leading
`AISHA_TRAINING` is SIGKILLed. A new leader is elected (publishes fail for a few seconds
meanwhile); the outbox relays and consumer loops must ride that out, so every training
still completes, with exactly one `training.completed` in the stream and one FAL job each.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import msgspec
import nats.errors
import nats.js.errors
import pytest
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

import contracts
from contracts.jetstream import STREAM_TRAINING
from sandbox.fal import FalEmulator
from services.kit.broker import provision
from tests.e2e.services import running_services, service_port
from tests.e2e.test_training_flow import _seed_avatar
from tests.ops.cluster import NatsCluster

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]
TRAININGS = 4


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    nodes = NatsCluster(tmp_path / "nats")
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture
async def js(cluster: NatsCluster) -> AsyncIterator[JetStreamContext]:
    await cluster.wait_ready()
    nc = await cluster.connect()
    jetstream = nc.jetstream(timeout=5.0)
    # A freshly formed cluster can still report a peer offline for a moment after the probe
    # stream worked ("no suitable peers for placement"): retry provisioning, bounded.
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        try:
            await provision(jetstream, replicas=3)
            break
        except (nats.js.errors.APIError, nats.errors.TimeoutError, TimeoutError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
    yield jetstream
    await nc.close()


async def _publish(js: JetStreamContext, event: contracts.Event, budget: float = 15.0) -> None:
    """A publisher with the 10-15 s retry budget a leader election needs (reference/nats.md)."""
    deadline = asyncio.get_running_loop().time() + budget
    while True:
        try:
            await js.publish(
                event.subject, contracts.encode(event), headers={"Nats-Msg-Id": event.event_id}
            )
            return
        except (nats.errors.Error, TimeoutError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.25)


def _request(avatar_id: str, user_id: int) -> contracts.TrainingRequested:
    return contracts.TrainingRequested(
        event_id=contracts.derived_event_id("training_requested", avatar_id, 1),
        occurred_at=contracts.utcnow(),
        avatar_id=avatar_id,
        user_id=user_id,
        attempt=1,
        training_type=contracts.TrainingType.STYLE,
        priority=contracts.FalPriority.SPEED,
        trigger_word=f"TOK{avatar_id[:6]}",
        photo_count=10,
    )


async def _wait_finished(db_url: str, avatar_ids: list[str], limit: float) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        deadline = asyncio.get_running_loop().time() + limit
        while asyncio.get_running_loop().time() < deadline:
            done = await conn.fetchval(
                "SELECT count(*) FROM avatars WHERE id = ANY($1::uuid[])"
                " AND fal_status = 'COMPLETED'",
                avatar_ids,
            )
            if done == len(avatar_ids):
                return
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    raise AssertionError(f"not every training completed within {limit}s")


async def _completed_in_stream(js: JetStreamContext) -> Counter[str]:
    """Every `training.completed` the stream holds, per avatar (after JetStream de-dup)."""
    info = await js.stream_info(STREAM_TRAINING.name)
    sub = await js.pull_subscribe(
        "aisha.training.completed",
        durable=None,
        stream=STREAM_TRAINING.name,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0),
    )
    seen: Counter[str] = Counter()
    total = info.state.messages
    fetched = 0
    while fetched < total:
        try:
            batch = await sub.fetch(100, timeout=2.0)
        except (nats.errors.TimeoutError, TimeoutError):
            break
        for msg in batch:
            fetched += 1
            event = msgspec.json.decode(msg.data)
            seen[event["avatar_id"]] += 1
            await msg.ack()
    await sub.unsubscribe()
    return seen


async def test_losing_the_stream_leader_loses_and_duplicates_nothing(
    cluster: NatsCluster, js: JetStreamContext, db_url: str, tmp_path: Path
) -> None:
    fal = FalEmulator(training_seconds=4.0, queue_seconds=0.2)
    await fal.start()
    try:
        avatars = [await _seed_avatar(db_url, js, "style") for _ in range(TRAININGS)]
        env = {
            "DATABASE_URL": db_url,
            "NATS_URL": cluster.urls,
            "NATS_STREAM_REPLICAS": "3",
            "PUBLIC_BASE_URL": "http://127.0.0.1:1",
            "STATUS_POLL_INTERVAL_SECONDS": "0.5",
            "SHUTDOWN_GRACE_SECONDS": "5",
            **fal.client_env(),
        }
        async with running_services(("status",), env, tmp_path / "logs") as status:
            env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{service_port(status['status'])}"
            async with running_services(("trainer",), env, tmp_path / "logs") as trainer:
                submitted = await js._nc.subscribe("aisha.training.submitted")
                first, rest = avatars[: TRAININGS // 2], avatars[TRAININGS // 2 :]
                for avatar_id, user_id in first:
                    await _publish(js, _request(avatar_id, user_id))
                await submitted.next_msg(timeout=30)

                info = await js.stream_info(STREAM_TRAINING.name)
                assert info.cluster is not None
                assert info.cluster.replicas is not None
                assert len(info.cluster.replicas) == 2, "the stream is not R3"
                leader = cluster.node(str(info.cluster.leader))
                cluster.kill(leader)

                # Requests published during the election: the publisher's retry budget.
                for avatar_id, user_id in rest:
                    await _publish(js, _request(avatar_id, user_id))
                await _wait_finished(db_url, [a for a, _ in avatars], limit=60)

                for child in (*status.values(), *trainer.values()):
                    assert child.proc is not None
                    assert child.proc.returncode is None, f"{child.name} died"
                new_leader = (await js.stream_info(STREAM_TRAINING.name)).cluster
                assert new_leader is not None
                assert new_leader.leader != leader.name
                await asyncio.sleep(1.5)  # room for a duplicate publish to land, if any
                completed = await _completed_in_stream(js)
    finally:
        await fal.stop()

    assert {a: completed[a] for a, _ in avatars} == {a: 1 for a, _ in avatars}
    conn = await asyncpg.connect(db_url)
    try:
        ledger = await conn.fetch(
            "SELECT subject_id::text AS avatar, count(*) AS n, min(state) AS state"
            " FROM fal_submissions GROUP BY subject_id"
        )
    finally:
        await conn.close()
    assert {r["avatar"]: (r["n"], r["state"]) for r in ledger} == {
        a: (1, "submitted") for a, _ in avatars
    }
    keys = Counter(
        (job.webhook_url or "").partition("?key=")[2] for job in fal.jobs if job.webhook_url
    )
    assert keys == Counter({f"training:{a}:1": 1 for a, _ in avatars}), "FAL got a job twice"
