"""Fault injection in the FAL emulator, observed through the real fal-client and webhooks."""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import fal_client
import pytest
from PIL import Image

from sandbox.fal import FalEmulator
from sandbox.fal.images import training_archive
from sandbox.fal.signing import HEADER_TIMESTAMP, verify
from sandbox.fal.testing import WebhookReceiver

GEN = "fal-ai/flux-lora"


@pytest.fixture
def fal_timings() -> dict[str, Any]:
    return {"training_seconds": 0.4, "generation_seconds": 0.1, "queue_seconds": 0.05}


@pytest.fixture
def emu(fal_emu: FalEmulator) -> FalEmulator:
    """The FAL emulator (tests/sandbox/conftest.py), by the name these cases use."""
    return fal_emu


async def generate(
    fal: fal_client.AsyncClient, receiver: WebhookReceiver, prompt: str = "a cat"
) -> str:
    handle = await fal.submit(
        GEN, {"prompt": prompt, "image_size": "square"}, webhook_url=receiver.url
    )
    await handle.get()
    return handle.request_id


async def test_lost_webhook(emu, fal, receiver):
    emu.add_fault("webhook_lost", app_id=GEN, times=1)
    request_id = await generate(fal, receiver)
    assert isinstance(await fal.status(GEN, request_id), fal_client.Completed)
    await asyncio.sleep(0.3)
    assert receiver.received == []
    assert emu.webhook_deliveries == []
    await generate(fal, receiver)
    await receiver.wait_for(1)


async def test_duplicate_webhook(emu, fal, receiver):
    emu.add_fault("webhook_duplicate", contains="twice")
    request_id = await generate(fal, receiver, "say it twice")
    first, second = await receiver.wait_for(2)
    assert first.body == second.body
    assert first.json["request_id"] == request_id
    assert all(verify(emu.jwks, d.headers, d.body) for d in (first, second))
    assert [d.copy for d in emu.webhook_deliveries] == [1, 2]


async def test_bad_signature(emu, fal, receiver):
    emu.add_fault("webhook_bad_signature")
    await generate(fal, receiver)
    (delivery,) = await receiver.wait_for(1)
    assert not verify(emu.jwks, delivery.headers, delivery.body)


async def test_stale_timestamp(emu, fal, receiver):
    emu.add_fault("webhook_stale_timestamp", seconds=900)
    await generate(fal, receiver)
    (delivery,) = await receiver.wait_for(1)
    stamp = int(delivery.headers[HEADER_TIMESTAMP])
    assert time.time() - stamp >= 899
    assert not verify(emu.jwks, delivery.headers, delivery.body)
    assert verify(emu.jwks, delivery.headers, delivery.body, now=stamp)  # signature itself is valid


async def test_late_and_out_of_order_webhooks(emu, fal, receiver):
    emu.add_fault("webhook_late", contains="late", seconds=0.4)
    late_id = await generate(fal, receiver, "late one")
    done = time.time()
    (late,) = await receiver.wait_for(1)
    assert late.json["request_id"] == late_id
    assert late.at - done >= 0.3

    emu.add_fault("webhook_out_of_order", contains="older", seconds=5, replay_seconds=0.2)
    older = await generate(fal, receiver, "older job")
    newer = await generate(fal, receiver, "newer job")
    got = await receiver.wait_for(4)
    assert [d.json["request_id"] for d in got[1:]] == [newer, older, older]


async def test_webhook_retries_until_2xx(emu, fal, receiver):
    receiver.script(500, 500)
    request_id = await generate(fal, receiver)
    got = await receiver.wait_for(3)
    assert [d.answered for d in got] == [500, 500, 200]
    attempts = [(d.attempt, d.status) for d in emu.webhook_deliveries if d.request_id == request_id]
    assert attempts == [(1, 500), (2, 500), (3, 200)]


async def test_webhook_connection_error_is_retried_and_recorded(tmp_path, monkeypatch):
    async with FalEmulator(
        generation_seconds=0.05,
        queue_seconds=0,
        webhook_retries=2,
        webhook_backoff_seconds=0.01,
        state_dir=tmp_path,
    ) as emulator:
        for key, value in emulator.client_env().items():
            monkeypatch.setenv(key, value)
        client = fal_client.AsyncClient()
        handle = await client.submit(GEN, {"prompt": "x"}, webhook_url="http://127.0.0.1:9/nowhere")
        await handle.get()
        for _ in range(100):
            if len(emulator.webhook_deliveries) == 3:
                break
            await asyncio.sleep(0.02)
        assert [d.status for d in emulator.webhook_deliveries] == [None, None, None]
        assert all(d.error for d in emulator.webhook_deliveries)


async def test_failed_training(emu, fal, receiver):
    emu.add_fault("job_failed", contains="FAILME", message="Training diverged")
    url = await fal.upload(training_archive(10), "application/zip")
    handle = await fal.submit(
        "fal-ai/flux-lora-portrait-trainer",
        {"images_data_url": url, "trigger_phrase": "FAILME"},
        webhook_url=receiver.url,
    )
    with pytest.raises(fal_client.FalClientHTTPError) as raised:
        await handle.get()
    assert raised.value.status_code == 500
    assert "Training diverged" in str(raised.value)
    status = await handle.status(with_logs=True)
    assert status.error == "Training diverged"
    assert status.error_type == "internal_server_error"
    (delivery,) = await receiver.wait_for(1)
    assert delivery.json["status"] == "ERROR"
    assert delivery.json["error"] == "Training diverged"


async def test_500_on_submit_raises(emu, fal):
    emu.add_fault("http_error", op="submit", status=500, times=1)
    with pytest.raises(fal_client.FalClientHTTPError) as raised:
        await fal.submit(GEN, {"prompt": "x"})
    assert raised.value.status_code == 500
    await fal.submit(GEN, {"prompt": "x"})
    assert [r.status for r in emu.recorder.find(op="submit")] == [500, 200]


async def test_500_after_submit_hides_a_created_job(emu, fal):
    emu.add_fault("http_error", op="submit", status=503, after=True, times=1)
    with pytest.raises(fal_client.FalClientHTTPError):
        await fal.submit(GEN, {"prompt": "x"})
    assert len(emu.jobs) == 1  # the job exists although the client saw an error


async def test_429_on_submit_is_retried_by_the_client(emu, fal):
    emu.add_fault("http_error", op="submit", status=429, times=2)
    handle = await fal.submit(GEN, {"prompt": "x"})
    assert handle.request_id
    assert [r.status for r in emu.recorder.find(op="submit")] == [429, 429, 200]


async def test_429_on_status(emu, fal):
    handle = await fal.submit(GEN, {"prompt": "x"})
    emu.add_fault("http_error", op="status", status=429, times=1)
    await handle.status()
    assert [r.status for r in emu.recorder.find(op="status")] == [429, 200]


async def test_hang_on_submit_times_out_and_retries(emu, fal):
    emu.add_fault("hang", op="submit", seconds=1.0, times=1)
    client = fal_client.AsyncClient(default_timeout=0.3)
    handle = await client.submit(GEN, {"prompt": "x"})
    assert handle.request_id
    assert len(emu.recorder.find(op="submit")) == 2
    await asyncio.sleep(1.0)
    assert len(emu.jobs) == 2  # the hung request was processed after the client gave up


async def test_nsfw_flag(emu, fal, http):
    emu.add_fault("nsfw", app_id=GEN)
    result = await fal.subscribe(GEN, {"prompt": "x", "num_images": 2, "image_size": "square"})
    assert result["has_nsfw_concepts"] == [True, True]
    blob = (await http.get(result["images"][0]["url"])).content
    assert Image.open(io.BytesIO(blob)).convert("L").getextrema() == (0, 0)


async def test_expired_urls(emu, fal, http):
    emu.add_fault("url_expiry", app_id=GEN, seconds=0.3, times=1)
    result = await fal.subscribe(GEN, {"prompt": "x", "image_size": "square"})
    url = result["images"][0]["url"]
    assert (await http.get(url)).status_code == 200
    await asyncio.sleep(0.35)
    assert (await http.get(url)).status_code == 404

    fresh = await fal.subscribe(GEN, {"prompt": "y", "image_size": "square"})
    assert emu.expire_url(fresh["images"][0]["url"], status=403)
    assert (await http.get(fresh["images"][0]["url"])).status_code == 403
