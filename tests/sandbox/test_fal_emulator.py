"""The FAL emulator driven by the real fal-client through the CONNECT proxy and throwaway CA."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys

import fal_client
import httpx
import pytest
from PIL import Image

from sandbox.fal import FalEmulator
from sandbox.fal.images import photo, training_archive
from sandbox.fal.signing import verify

PORTRAIT = "fal-ai/flux-lora-portrait-trainer"
FAST = "fal-ai/flux-lora-fast-training"


@pytest.fixture
def emu(fal_emu: FalEmulator) -> FalEmulator:
    """The FAL emulator (tests/sandbox/conftest.py), by the name these cases use."""
    return fal_emu


async def follow(
    handle: fal_client.AsyncRequestHandle, limit: float = 10.0
) -> list[fal_client.Status]:
    """Poll status with logs until COMPLETED (bounded)."""
    seen: list[fal_client.Status] = []
    deadline = asyncio.get_running_loop().time() + limit
    while asyncio.get_running_loop().time() < deadline:
        status = await handle.status(with_logs=True)
        seen.append(status)
        if isinstance(status, fal_client.Completed):
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"job did not complete: {seen[-1:]}")


async def jwks_via_proxy(http: httpx.AsyncClient, emu: FalEmulator) -> dict:
    response = await http.get(emu.public_key_jwks_url)
    response.raise_for_status()
    return response.json()


@pytest.mark.parametrize(
    ("app_id", "arguments"),
    [
        (
            PORTRAIT,
            {
                "trigger_phrase": "ohwx woman",
                "steps": 2500,
                "learning_rate": 0.00009,
                "multiresolution_training": True,
                "subject_crop": True,
                "create_masks": True,
            },
        ),
        (FAST, {"trigger_word": "ohwx", "steps": 1000, "create_masks": True, "is_style": False}),
    ],
)
async def test_training_flow(emu, fal, http, receiver, app_id, arguments):
    archive_url = await fal.upload(training_archive(10), "application/zip", "photos.zip")
    assert archive_url.startswith("https://v3.fal.media/files/")

    handle = await fal.submit(
        app_id, {"images_data_url": archive_url, **arguments}, webhook_url=receiver.url
    )
    assert handle.status_url.startswith(f"https://queue.fal.run/{app_id}/requests/")
    seen = await follow(handle)

    kinds = [type(s).__name__ for s in seen]
    assert kinds[0] == "Queued"
    assert "InProgress" in kinds
    assert kinds[-1] == "Completed"
    final = seen[-1]
    assert final.error is None
    messages = [entry["message"] for entry in final.logs]
    assert any(f"Training step {arguments['steps']}/{arguments['steps']}" in m for m in messages)
    assert all({"message", "level", "source", "timestamp"} <= entry.keys() for entry in final.logs)

    result = await handle.get()
    lora, config = result["diffusers_lora_file"], result["config_file"]
    lora_bytes = (await http.get(lora["url"])).content
    assert len(lora_bytes) == lora["file_size"]
    assert lora_bytes.startswith(b"AISHA-SANDBOX-LORA")
    config_json = (await http.get(config["url"])).json()
    assert config_json["app_id"] == app_id
    assert config_json["images"] == 10

    (delivery,) = await receiver.wait_for(1)
    body = delivery.json
    assert body["status"] == "OK"
    assert body["request_id"] == handle.request_id
    assert body["gateway_request_id"] == handle.request_id
    assert body["payload"] == result
    assert body["error"] is None
    assert body["payload_error"] is None
    assert verify(await jwks_via_proxy(http, emu), delivery.headers, delivery.body)
    assert delivery.headers["X-Fal-Webhook-Request-Id"] == handle.request_id

    (submit,) = emu.recorder.find(op="submit")
    assert submit.app_id == app_id
    assert submit.query == {"fal_webhook": receiver.url}
    assert submit.json["images_data_url"] == archive_url
    assert submit.headers["Authorization"] == "Key sandbox-key-id:***"


async def test_upload_file_roundtrip(fal, http, tmp_path):
    path = tmp_path / "face.jpg"
    path.write_bytes(photo(1))
    url = await fal.upload_file(path)
    got = await http.get(url)
    assert got.status_code == 200
    assert got.content == path.read_bytes()
    assert got.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize(
    ("make_url", "expected"),
    [
        ("few", "At least 10 images are required, found 4"),
        ("junk", "At least 10 images are required, found 9"),
        ("missing", "Failed to download file"),
        ("not_zip", "File is not a zip archive"),
    ],
)
async def test_bad_training_archive_fails_with_422(emu, fal, receiver, make_url, expected):
    if make_url == "few":
        url = await fal.upload(training_archive(4), "application/zip")
    elif make_url == "junk":
        url = await fal.upload(training_archive(9, junk=3), "application/zip")
    elif make_url == "not_zip":
        url = await fal.upload(b"plain text", "application/zip")
    else:
        url = "https://v3.fal.media/files/rabbit/nothing_here.zip"
    handle = await fal.submit(FAST, {"images_data_url": url}, webhook_url=receiver.url)
    final = (await follow(handle))[-1]
    assert final.error == "Invalid status code: 422"
    assert final.error_type == "validation_error"
    with pytest.raises(fal_client.FalClientHTTPError) as raised:
        await handle.get()
    assert raised.value.status_code == 422
    (detail,) = raised.value.response.json()["detail"]
    assert detail["loc"] == ["body", "images_data_url"]
    assert expected in detail["msg"]
    (delivery,) = await receiver.wait_for(1)
    assert delivery.json["status"] == "ERROR"
    assert delivery.json["payload"]["detail"][0]["msg"] == detail["msg"]


async def test_missing_argument_is_422(fal):
    handle = await fal.submit(PORTRAIT, {"trigger_phrase": "x"})
    await follow(handle)
    with pytest.raises(fal_client.FalClientHTTPError) as raised:
        await handle.get()
    assert raised.value.status_code == 422
    assert raised.value.response.json()["detail"][0]["loc"] == ["body", "images_data_url"]


async def test_validate_at_submit_rejects_immediately(tmp_path, monkeypatch):
    async with FalEmulator(validate_at_submit=True, state_dir=tmp_path) as emulator:
        for key, value in emulator.client_env().items():
            monkeypatch.setenv(key, value)
        with pytest.raises(fal_client.FalClientHTTPError) as raised:
            await fal_client.AsyncClient().submit("fal-ai/flux-lora", {"num_images": 9})
        assert raised.value.status_code == 422
        fields = {tuple(d["loc"]) for d in raised.value.response.json()["detail"]}
        assert fields == {("body", "prompt")}
        assert emulator.jobs == []


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


async def test_generation_honours_size_count_and_seed(fal, http):
    lora = {"path": "https://v3.fal.media/files/x/unknown.safetensors", "scale": 1.0}
    args = {
        "prompt": "ohwx woman on a beach",
        "image_size": {"width": 320, "height": 240},
        "num_images": 3,
    }
    failed = await fal.submit("fal-ai/flux-lora", {**args, "loras": [lora]})
    with pytest.raises(fal_client.FalClientHTTPError):
        await failed.get()

    first = await fal.subscribe("fal-ai/flux-lora", {**args, "seed": 42, "output_format": "png"})
    assert first["seed"] == 42
    assert first["has_nsfw_concepts"] == [False] * 3
    assert first["prompt"] == args["prompt"]
    assert "inference" in first["timings"]
    blobs = []
    for image in first["images"]:
        assert (image["width"], image["height"], image["content_type"]) == (320, 240, "image/png")
        blob = (await http.get(image["url"])).content
        assert _decode(blob).size == (320, 240)
        blobs.append(blob)
    assert len(set(blobs)) == 3

    again = await fal.subscribe(
        "fal-ai/flux-lora", {**args, "seed": 42, "output_format": "png", "num_images": 1}
    )
    other = await fal.subscribe(
        "fal-ai/flux-lora", {**args, "seed": 43, "output_format": "png", "num_images": 1}
    )
    assert (await http.get(again["images"][0]["url"])).content == blobs[0]
    assert (await http.get(other["images"][0]["url"])).content != blobs[0]

    preset = await fal.subscribe(
        "fal-ai/flux/dev", {"prompt": "a fox", "image_size": "portrait_16_9"}
    )
    (image,) = preset["images"]
    assert (image["width"], image["height"], image["content_type"]) == (576, 1024, "image/jpeg")
    assert _decode((await http.get(image["url"])).content).size == (576, 1024)


async def test_caption_and_sync_run(fal):
    url = await fal.upload(photo(3), "image/jpeg", "face.jpg")
    queued = await fal.subscribe("fal-ai/florence-2-large/detailed-caption", {"image_url": url})
    assert "photograph of 256x256 pixels" in queued["results"]
    direct = await fal.run("fal-ai/florence-2-large/detailed-caption", {"image_url": url})
    assert direct == queued


async def test_cancel(emu, fal, receiver):
    handle = await fal.submit(
        FAST, {"images_data_url": "https://v3.fal.media/files/a/b.zip"}, webhook_url=receiver.url
    )
    await handle.cancel()
    final = (await follow(handle))[-1]
    assert final.error_type == "request_cancelled"
    with pytest.raises(fal_client.FalClientHTTPError) as raised:
        await handle.cancel()
    assert raised.value.status_code == 400
    await asyncio.sleep(0.2)
    assert receiver.received == []
    assert emu.job(handle.request_id).cancelled


async def test_queue_position_with_concurrency_one(tmp_path, monkeypatch):
    async with FalEmulator(
        generation_seconds=0.1, queue_seconds=0.3, concurrency=1, state_dir=tmp_path
    ) as emulator:
        for key, value in emulator.client_env().items():
            monkeypatch.setenv(key, value)
        client = fal_client.AsyncClient()
        handles = [await client.submit("fal-ai/flux/dev", {"prompt": f"p{n}"}) for n in range(3)]
        status = await handles[2].status()
        assert isinstance(status, fal_client.Queued)
        assert status.position == 2
        for handle in handles:
            await handle.get()


async def test_auth_and_control_api(emu, fal, http):
    denied = await http.post("https://queue.fal.run/fal-ai/flux/dev", json={"prompt": "x"})
    assert denied.status_code == 401
    missing = await http.post(
        "https://queue.fal.run/fal-ai/nope",
        json={},
        headers={"Authorization": f"Key {emu.fal_key}"},
    )
    assert missing.status_code == 404

    async with httpx.AsyncClient(base_url=emu.control_url, trust_env=False) as control:
        added = await control.post(
            "/_emulator/faults", json={"name": "nsfw", "app_id": "fal-ai/flux", "times": 1}
        )
        assert added.status_code == 201
        result = await fal.subscribe("fal-ai/flux/dev", {"prompt": "x", "image_size": "square"})
        assert result["has_nsfw_concepts"] == [True]
        assert (await control.get("/_emulator/faults")).json() == []
        submits = (await control.get("/_emulator/requests", params={"op": "submit"})).json()
        assert [r["status"] for r in submits] == [401, 404, 200]
        assert submits[-1]["json"] == {"prompt": "x", "image_size": "square"}
        jobs = (await control.get("/_emulator/jobs")).json()
        assert jobs[-1]["faults"] == ["nsfw"]
        assert jobs[-1]["state"] == "COMPLETED"
        info = (await control.get("/_emulator/info")).json()
        assert info["env"]["HTTPS_PROXY"] == emu.proxy_url
        assert "webhook_lost" in info["faults"]
        bad = await control.post("/_emulator/faults", json={"name": "no_such_fault"})
        assert bad.status_code == 422
        assert json.loads((await control.get("/_emulator/jwks")).text) == emu.jwks


CHILD = """
import fal_client
result = fal_client.run("fal-ai/flux/dev", arguments={"prompt": "child", "image_size": "square"})
print(result["images"][0]["width"])
"""


async def test_child_process_with_client_env(emu):
    env = {**os.environ, **emu.client_env()}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert out.decode().strip() == "512"
    assert emu.recorder.find(host="fal.run", op="run")
