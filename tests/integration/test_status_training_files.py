"""A training finished by its webhook alone still gets its logs, and our copy of its LoRA.

No poll ran (the poller is not even started): the webhook finishes the training, which
carries no logs, and the files step (`keeping.TrainingFiles`) then reads FAL's status once
with `logs=true` and copies the LoRA and its config into the Object Store. `fal_response_data`
is the webhook body FAL sent, whole. The real FAL emulator through the real fal-client, real
PostgreSQL and a real NATS Object Store.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import fal_client
import pytest
from nats.js.object_store import ObjectStore

from sandbox.fal import FalEmulator
from sandbox.fal.images import training_archive
from sandbox.fal.testing import WebhookReceiver
from services.kit import loras
from services.kit.db import create_pool
from services.status.images import ImageStore
from services.status.keeping import MAX_TRIES, TrainingFiles
from services.status.metrics import StatusMetrics
from services.status.poller import TokenBucket
from services.status.training_tracking import Tracker, Webhook

APP = "fal-ai/flux-lora-fast-training"


@pytest.fixture
async def emu(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FalEmulator]:
    async with FalEmulator(
        training_seconds=0.4, queue_seconds=0, webhook_backoff_seconds=0.05
    ) as emulator:
        for key, value in emulator.client_env().items():
            monkeypatch.setenv(key, value)
        yield emulator


def kept(metrics: StatusMetrics, kind: str, outcome: str) -> float:
    labels = {"kind": kind, "outcome": outcome}
    return metrics.registry.get_sample_value("aisha_status_training_files_total", labels) or 0.0


async def test_a_webhook_only_training_gets_its_logs_and_our_lora_copy(
    emu: FalEmulator, bucket: ObjectStore, db_url: str
) -> None:
    fal = fal_client.AsyncClient()
    hook = WebhookReceiver()
    await hook.start()
    archive = await fal.upload(training_archive(10), "application/zip", "a.zip")
    handle = await fal.submit(APP, {"images_data_url": archive}, webhook_url=hook.url)
    [delivery] = await hook.wait_for(1, within=20)
    await hook.stop()
    assert not [r for r in emu.requests if r.op == "status"]  # nobody polled

    pool = await create_pool(db_url, "aisha_status", max_size=2)
    admin = await asyncpg.connect(db_url)
    metrics = StatusMetrics()
    store = ImageStore(bucket, metrics, backoff_seconds=0.01)
    try:
        avatar_id = await _training(admin, handle.request_id)
        body: dict[str, Any] = delivery.json
        done = await Tracker(pool, metrics).finish_delivery(
            Webhook(
                handle.request_id,
                int(delivery.headers["X-Fal-Webhook-Timestamp"]),
                delivery.body.decode(),
                None,
            ),
            ok=True,
            payload=body["payload"],
            error=None,
        )
        assert done.webhook_id is not None
        row = await admin.fetchrow("SELECT * FROM avatars WHERE id = $1", avatar_id)
        assert row["training_logs"] is None  # a webhook carries no logs
        assert json.loads(row["fal_response_data"]) == body  # FAL's body, whole

        files = TrainingFiles(pool, store, fal, TokenBucket(10.0), metrics, interval=5.0)
        assert await files.keep_once() == 1
        assert await files.keep_once() == 0  # nothing left to keep

        row = await admin.fetchrow("SELECT * FROM avatars WHERE id = $1", avatar_id)
        assert "Training step 1000/1000" in row["training_logs"]
        status_reads = [r for r in emu.requests if r.op == "status"]
        assert [r.query.get("logs") for r in status_reads] == ["true"]  # once, with logs
        weights = loras.weights_name(str(avatar_id), 1)
        assert row["lora_object_key"] == weights
        lora_at_fal = emu.storage.by_url(body["payload"]["diffusers_lora_file"]["url"])
        config_at_fal = emu.storage.by_url(body["payload"]["config_file"]["url"])
        assert lora_at_fal is not None
        assert config_at_fal is not None
        assert (await bucket.get(weights)).data == lora_at_fal.data
        assert (await bucket.get(loras.config_name(weights))).data == config_at_fal.data
        assert kept(metrics, "logs", "ok") == 1
        assert kept(metrics, "lora", "ok") == 1
    finally:
        await store.close()
        await admin.close()
        await pool.close()


async def test_a_lora_fal_no_longer_has_is_given_up_not_retried_forever(
    emu: FalEmulator, bucket: ObjectStore, db_url: str
) -> None:
    """FAL deleted the files before we copied them: counted `gone`, the logs still kept,
    and the row leaves the queue after `MAX_TRIES` at most."""
    fal = fal_client.AsyncClient()
    archive = await fal.upload(training_archive(10), "application/zip", "a.zip")
    handle = await fal.submit(APP, {"images_data_url": archive})
    result = await handle.get()
    assert emu.expire_url(result["diffusers_lora_file"]["url"])
    pool = await create_pool(db_url, "aisha_status", max_size=2)
    admin = await asyncpg.connect(db_url)
    metrics = StatusMetrics()
    store = ImageStore(bucket, metrics, backoff_seconds=0.01)
    try:
        avatar_id = await _training(admin, handle.request_id)
        response = {"status": {"status": "COMPLETED"}, "result": result}
        tracker = Tracker(pool, metrics)
        assert await tracker.finish(
            handle.request_id, ok=True, payload=result, error=None, response=response
        )
        files = TrainingFiles(pool, store, fal, TokenBucket(10.0), metrics, interval=0.0)
        tries = 0
        while await files.keep_once():
            tries += 1
            assert tries <= 6
        row = await admin.fetchrow("SELECT * FROM avatars WHERE id = $1", avatar_id)
        assert row["lora_object_key"] is None
        assert row["training_logs"]  # the logs did not depend on the file
        assert tries == MAX_TRIES
        assert kept(metrics, "lora", "gone") == MAX_TRIES
    finally:
        await store.close()
        await admin.close()
        await pool.close()


async def _training(admin: asyncpg.Connection, request_id: str) -> uuid.UUID:
    """A user and an avatar whose FAL training is running, as the trainer leaves it."""
    user_id, avatar_id = uuid.uuid4().int % 10**12, uuid.uuid4()
    await admin.execute("INSERT INTO users (id, first_name) VALUES ($1, 'F')", user_id)
    await admin.execute(
        "INSERT INTO avatars (id, user_id, name, gender, status, training_type, trigger_word,"
        " training_attempt, fal_request_id, fal_endpoint, submitted_attempt, submitted_at,"
        " tracked_attempt, fal_status) VALUES ($1, $2, 'F', 'female', 'training', 'style',"
        " 'ohwx', 1, $3, $4, 1, now(), 1, 'IN_PROGRESS')",
        avatar_id,
        user_id,
        request_id,
        APP,
    )
    return avatar_id
