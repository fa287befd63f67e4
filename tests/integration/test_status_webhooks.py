"""The status service's webhook path in process, on a migrated PostgreSQL and real NATS.

The common case — a running training's outcome — is one statement and one commit: the
delivery stored (already processed), the avatar finished, the event queued with exactly the
bytes `encode` makes of it, and the event published at once (`OutboxShortcut`), then marked
published. Everything else keeps its guarantees: a replay is recorded once (also many
copies at once), a later delivery changes nothing, a late progress report changes nothing,
a failure becomes `training.failed`; without the shortcut the relay is woken by NOTIFY.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import msgspec
import nats
import pytest
from aiohttp import web
from nats.aio.msg import Msg

from contracts import TrainingCompleted, TrainingFailed
from contracts.base import encode
from services.kit.db import OUTBOX_CHANNEL, create_pool
from services.kit.outbox import OutboxShortcut
from services.kit.schema import STATUS
from services.status.metrics import StatusMetrics
from services.status.signature import JwksVerifier
from services.status.training_tracking import Tracker
from services.status.webhooks import WebhookReceiver
from tests.botkit import eventually, jetstream
from tests.hostile.jwks import JwksServer

APP = "fal-ai/flux-lora-fast-training"


@dataclass
class Status:
    """A webhook receiver on loopback, its pool, and what it published."""

    url: str
    jwks: JwksServer
    http: aiohttp.ClientSession
    pool: asyncpg.Pool
    metrics: StatusMetrics
    seen: list[Msg]

    async def post(self, body: bytes, request_id: str, *, timestamp: int | None = None) -> Any:
        headers = self.jwks.headers(body, request_id, timestamp=timestamp)
        async with self.http.post(self.url, data=body, headers=headers) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    def events(self, request_id: str) -> list[Msg]:
        return [m for m in self.seen if json.loads(m.data).get("request_id") == request_id]

    def count(self, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "aisha_status_webhooks_total", {"outcome": outcome}
        )
        return value or 0.0


@contextlib.asynccontextmanager
async def running(db_url: str, nats_url: str, *, shortcut: bool) -> AsyncIterator[Status]:
    """The receiver as the service wires it (with the shortcut or without), on loopback."""
    async with jetstream(nats_url, provisioned=True) as js, JwksServer() as jwks:
        pool = await create_pool(db_url, STATUS, max_size=4)
        metrics = StatusMetrics()
        stop = asyncio.Event()
        fast = OutboxShortcut(pool, js, metrics, mark_delay=0.0) if shortcut else None
        marker = asyncio.create_task(fast.run(stop)) if fast is not None else None
        tracker = Tracker(pool, metrics, fast)
        verifier = JwksVerifier(jwks.url, tolerance_seconds=300)
        receiver = WebhookReceiver(pool, verifier, tracker, metrics, max_bytes=1 << 20)
        app = web.Application()
        app.add_routes(receiver.routes())
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/fal/webhook"
        seen: list[Msg] = []

        async def collect(msg: Msg) -> None:
            seen.append(msg)

        nc = await nats.connect(nats_url)
        await nc.subscribe("aisha.training.>", cb=collect)
        try:
            async with aiohttp.ClientSession() as http:
                yield Status(url, jwks, http, pool, metrics, seen)
        finally:
            await nc.close()
            stop.set()
            if marker is not None:
                await marker
            await runner.cleanup()
            await verifier.close()
            await pool.close()


@pytest.fixture
async def status(db_url: str, nats_url: str) -> AsyncIterator[Status]:
    async with running(db_url, nats_url, shortcut=True) as made:
        yield made


async def training(admin_pool: asyncpg.Pool) -> tuple[uuid.UUID, int, str]:
    """A user and an avatar whose training FAL is running (as the trainer leaves it)."""
    user_id = uuid.uuid4().int % 10**12
    avatar_id = uuid.uuid4()
    request_id = f"req-{uuid.uuid4()}"
    await admin_pool.execute("INSERT INTO users (id, first_name) VALUES ($1, 'W')", user_id)
    await admin_pool.execute(
        "INSERT INTO avatars (id, user_id, name, gender, status, training_type, trigger_word,"
        " training_attempt, fal_request_id, fal_endpoint, submitted_attempt, submitted_at,"
        " tracked_attempt, fal_status) VALUES ($1, $2, 'W', 'female', 'training', 'style',"
        " 'ohwx', 2, $3, $4, 2, now(), 2, 'IN_PROGRESS')",
        avatar_id,
        user_id,
        request_id,
        APP,
    )
    return avatar_id, user_id, request_id


def completed(request_id: str) -> bytes:
    base = f"https://v3.fal.media/files/test/{request_id}"
    return json.dumps(
        {
            "request_id": request_id,
            "gateway_request_id": request_id,
            "status": "OK",
            "payload": {
                "diffusers_lora_file": {"url": f"{base}/lora.safetensors"},
                "config_file": {"url": f"{base}/config.json"},
            },
            "payload_error": None,
            "fal_adds_this_later": {"nobody": "reads it"},  # kept: FAL's answer, whole
        }
    ).encode()


async def outbox(pool: asyncpg.Pool, subject: str, avatar_id: uuid.UUID) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT id, payload, published_at FROM outbox WHERE subject = $1"
        " AND position($2::bytea in payload) > 0",
        subject,
        str(avatar_id).encode(),
    )


async def test_a_completion_is_stored_applied_queued_and_published_at_once(
    status: Status, admin_pool: asyncpg.Pool
) -> None:
    avatar_id, user_id, request_id = await training(admin_pool)
    assert await status.post(completed(request_id), request_id) == {"ok": True}

    avatar = await admin_pool.fetchrow("SELECT * FROM avatars WHERE id = $1", avatar_id)
    assert avatar["fal_status"] == "COMPLETED"
    assert avatar["training_progress"] == 100
    assert avatar["training_finished_at"] is not None
    assert avatar["diffusers_lora_file_url"].endswith("/lora.safetensors")
    assert avatar["config_file_url"].endswith("/config.json")
    assert json.loads(avatar["fal_response_data"]) == json.loads(completed(request_id))
    hook = await admin_pool.fetchrow(
        "SELECT body, processed_at FROM fal_webhooks WHERE request_id = $1", request_id
    )
    assert json.loads(hook["body"]) == json.loads(completed(request_id))
    assert hook["processed_at"] is not None

    # The stored copy is byte for byte what `encode` makes of the event (/delete_me finds a
    # user's outbox rows by `"user_id":<id>,`), and it is the one published.
    [row] = await outbox(admin_pool, TrainingCompleted.subject, avatar_id)
    event = msgspec.json.decode(bytes(row["payload"]), type=TrainingCompleted)
    assert (event.avatar_id, event.user_id, event.attempt) == (str(avatar_id), user_id, 2)
    assert event.request_id == request_id
    assert event.lora_url.endswith("/lora.safetensors")
    assert bytes(row["payload"]) == encode(event)
    assert f'"user_id":{user_id},'.encode() in bytes(row["payload"])
    await eventually(lambda: _true(len(status.events(request_id)) == 1))
    [msg] = status.events(request_id)
    assert msg.data == bytes(row["payload"])
    assert msg.headers is not None
    assert msg.headers["Nats-Msg-Id"] == str(row["id"])

    async def marked() -> bool:
        [again] = await outbox(admin_pool, TrainingCompleted.subject, avatar_id)
        return again["published_at"] is not None

    await eventually(marked)
    assert status.count("ok") == 1


async def test_the_same_delivery_again_is_a_replay_recorded_once(
    status: Status, admin_pool: asyncpg.Pool
) -> None:
    avatar_id, _, request_id = await training(admin_pool)
    stamp = int(time.time())
    body = completed(request_id)
    assert await status.post(body, request_id, timestamp=stamp) == {"ok": True}
    assert await status.post(body, request_id, timestamp=stamp) == {"ok": True, "duplicate": True}
    # a new delivery of the same outcome (FAL's retry signs it again): stored, changes nothing
    assert await status.post(body, request_id, timestamp=stamp + 1) == {"ok": True}
    rows = await admin_pool.fetch(
        "SELECT fal_timestamp, processed_at FROM fal_webhooks WHERE request_id = $1"
        " ORDER BY fal_timestamp",
        request_id,
    )
    assert [r["fal_timestamp"] for r in rows] == [stamp, stamp + 1]
    assert all(r["processed_at"] is not None for r in rows)
    assert len(await outbox(admin_pool, TrainingCompleted.subject, avatar_id)) == 1
    assert (status.count("ok"), status.count("replay"), status.count("duplicate")) == (1, 1, 1)


async def test_copies_of_a_delivery_at_once_finish_the_training_once(
    status: Status, admin_pool: asyncpg.Pool
) -> None:
    avatar_id, _, request_id = await training(admin_pool)
    stamp = int(time.time())
    body = completed(request_id)
    answers = await asyncio.gather(
        *(status.post(body, request_id, timestamp=stamp) for _ in range(20))
    )
    assert answers.count({"ok": True}) == 1
    assert answers.count({"ok": True, "duplicate": True}) == 19
    stored = await admin_pool.fetchval(
        "SELECT count(*) FROM fal_webhooks WHERE request_id = $1", request_id
    )
    assert stored == 1
    assert len(await outbox(admin_pool, TrainingCompleted.subject, avatar_id)) == 1
    await eventually(lambda: _true(len(status.events(request_id)) == 1))


async def test_late_progress_after_the_completion_changes_nothing(
    status: Status, admin_pool: asyncpg.Pool
) -> None:
    avatar_id, _, request_id = await training(admin_pool)
    await status.post(completed(request_id), request_id)
    tracker_pool = status.pool
    before = await admin_pool.fetchrow("SELECT * FROM avatars WHERE id = $1", avatar_id)
    tracker = Tracker(tracker_pool, status.metrics)
    await tracker.progress(request_id, "IN_PROGRESS", 40, None, "step 40/100", {})
    after = await admin_pool.fetchrow("SELECT * FROM avatars WHERE id = $1", avatar_id)
    assert dict(after) == dict(before)
    progress = await admin_pool.fetchval(
        "SELECT count(*) FROM outbox WHERE subject = 'aisha.training.progress'"
        " AND position($1::bytea in payload) > 0",
        request_id.encode(),
    )
    assert progress == 0


async def test_a_failed_job_becomes_training_failed(
    status: Status, admin_pool: asyncpg.Pool
) -> None:
    avatar_id, user_id, request_id = await training(admin_pool)
    body = json.dumps(
        {"request_id": request_id, "status": "ERROR", "error": "CUDA out of memory"}
    ).encode()
    assert await status.post(body, request_id) == {"ok": True}
    avatar = await admin_pool.fetchrow(
        "SELECT fal_status, training_error FROM avatars WHERE id = $1", avatar_id
    )
    assert (avatar["fal_status"], avatar["training_error"]) == ("ERROR", "CUDA out of memory")
    [row] = await outbox(admin_pool, TrainingFailed.subject, avatar_id)
    event = msgspec.json.decode(bytes(row["payload"]), type=TrainingFailed)
    assert (event.user_id, event.attempt, event.detail) == (user_id, 2, "CUDA out of memory")
    assert bytes(row["payload"]) == encode(event)


async def test_without_the_shortcut_the_relay_is_woken_instead(
    db_url: str, nats_url: str, admin_pool: asyncpg.Pool
) -> None:
    woken: list[str] = []
    listener = await asyncpg.connect(db_url)
    await listener.add_listener(OUTBOX_CHANNEL, lambda *args: woken.append(args[-1]))
    try:
        async with running(db_url, nats_url, shortcut=False) as made:
            avatar_id, _, request_id = await training(admin_pool)
            assert await made.post(completed(request_id), request_id) == {"ok": True}
            [row] = await outbox(admin_pool, TrainingCompleted.subject, avatar_id)
            assert row["published_at"] is None  # the relay's to publish
            await eventually(lambda: _true(woken == ["status"]))
            assert made.events(request_id) == []
    finally:
        await listener.close()


async def _true(value: bool) -> bool:
    return value
