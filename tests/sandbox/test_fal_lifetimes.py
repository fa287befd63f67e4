"""The emulator keeps each file as long as it was asked to, then really deletes it.

Uploads carry fal-client's `lifecycle=` (headers `X-Fal-Object-Lifecycle[-Preference]`); a
job's outputs get the lifetime of `X-Fal-Object-Lifecycle-Preference` on the submit; a file
that asked for none gets the assumed default. `lifetime_scale` shrinks all of them, so a
"one hour" file dies within the test. Real fal-client through the emulator's proxy.
"""

from __future__ import annotations

import asyncio
import json
import time

import fal_client
import httpx
from fal_client.client import StorageSettings

from sandbox.fal import FalEmulator
from sandbox.fal.images import training_archive
from sandbox.fal.storage import Storage

FAST = "fal-ai/flux-lora-fast-training"
#: One nominal hour lasts 0.36 s of real time.
SCALE = 0.0001


async def gone_within(http: httpx.AsyncClient, url: str, seconds: float) -> float:
    """Seconds until `url` answers 404 (fails the test when it never does)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if (await http.get(url)).status_code == 404:
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"{url} still served after {seconds}s")


async def test_an_upload_lives_as_long_as_its_lifecycle_asked(
    fal_emu: FalEmulator, fal: fal_client.AsyncClient, http: httpx.AsyncClient
) -> None:
    fal_emu.configure(lifetime_scale=SCALE)
    short = await fal.upload(
        b"faces", "application/zip", "a.zip", lifecycle=StorageSettings(expires_in="1h")
    )
    default = await fal.upload(b"kept", "application/zip", "b.zip")
    assert (await http.get(short)).content == b"faces"
    waited = await gone_within(http, short, 5.0)
    assert waited <= 3600 * SCALE + 1.0
    stored = fal_emu.storage.get(short.rpartition("/files/")[2])
    assert stored is not None
    assert stored.data == b""
    # No lifecycle: the assumed default (7 days nominal: 60 s here), still served.
    assert Storage.DEFAULT_UPLOAD_LIFETIME == 7 * 86400
    assert (await http.get(default)).status_code == 200


async def test_a_jobs_outputs_live_as_long_as_the_submit_asked(
    fal_emu: FalEmulator, fal: fal_client.AsyncClient, http: httpx.AsyncClient
) -> None:
    archive = await fal.upload(training_archive(10), "application/zip", "t.zip")
    fal_emu.configure(lifetime_scale=SCALE)
    preference = json.dumps({"expiration_duration_seconds": 3600})
    handle = await fal.submit(
        FAST,
        {"images_data_url": archive, "steps": 100},
        headers={"X-Fal-Object-Lifecycle-Preference": preference},
    )
    result = await asyncio.wait_for(handle.get(), 20)
    lora = result["diffusers_lora_file"]["url"]
    submit = [r for r in fal_emu.requests if r.op == "submit"][-1]
    assert json.loads(submit.headers["X-Fal-Object-Lifecycle-Preference"]) == {
        "expiration_duration_seconds": 3600
    }
    job = fal_emu.job(handle.request_id)
    assert job is not None
    assert job.output_lifetime == 3600
    await gone_within(http, lora, 5.0)
    await gone_within(http, result["config_file"]["url"], 1.0)


async def test_outputs_without_a_lifetime_get_the_default(
    fal_emu: FalEmulator, fal: fal_client.AsyncClient
) -> None:
    archive = await fal.upload(training_archive(10), "application/zip", "t.zip")
    handle = await fal.submit(FAST, {"images_data_url": archive, "steps": 100})
    result = await asyncio.wait_for(handle.get(), 20)
    job = fal_emu.job(handle.request_id)
    assert job is not None
    assert job.output_lifetime is None
    stored = fal_emu.storage.by_url(result["diffusers_lora_file"]["url"])
    assert stored is not None
    assert stored.expires_at is not None
    left = stored.expires_at - time.time()
    assert 0 < left <= fal_emu.apps.settings.result_ttl_seconds  # clock and lifetime scale 1
