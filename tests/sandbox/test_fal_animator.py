"""`fal-ai/kling-video/v2.1/standard/image-to-video` in the emulator, through the real
fal-client: a real, playable MP4 of the requested duration made from the picture (decoded
back frame by frame with ffmpeg), and the documented schema enforced (422 `detail` lists)."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import fal_client
import httpx
import imageio_ffmpeg
import pytest

from sandbox.fal.animator import FPS
from sandbox.fal.images import photo

ANIMATOR = "fal-ai/kling-video/v2.1/standard/image-to-video"


def decoded(data: bytes) -> tuple[int, float, str]:
    """(frames, seconds, codec and size line) of an MP4, by decoding every frame."""
    with tempfile.NamedTemporaryFile(suffix=".mp4") as file:
        Path(file.name).write_bytes(data)
        done = subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", file.name, "-f", "null", "-"],
            capture_output=True, check=True, timeout=60,
        )  # fmt: skip
    log = done.stderr.decode()
    frames = int(re.findall(r"frame=\s*(\d+)", log)[-1])
    hours, minutes, seconds = re.search(r"Duration: (\d+):(\d+):([\d.]+)", log).groups()  # type: ignore[union-attr]
    stream = re.search(r"Video: (.*)", log).group(1)  # type: ignore[union-attr]
    return frames, int(hours) * 3600 + int(minutes) * 60 + float(seconds), stream


@pytest.mark.parametrize("duration", ["5", "10"])
async def test_a_picture_becomes_a_playable_video_of_the_duration(
    fal: fal_client.AsyncClient, http: httpx.AsyncClient, duration: str
) -> None:
    url = await fal.upload(photo(1, (192, 256)), "image/jpeg", "portrait.jpg")
    arguments = {"prompt": "she smiles", "image_url": url, "duration": duration}
    result = await fal.subscribe(ANIMATOR, arguments)
    video = result["video"]
    assert (video["content_type"], video["file_name"]) == ("video/mp4", "output.mp4")
    data = (await http.get(video["url"])).content
    assert video["file_size"] == len(data)
    assert data[4:8] == b"ftyp"
    frames, seconds, stream = decoded(data)
    assert frames == int(duration) * FPS
    assert seconds == pytest.approx(int(duration), abs=0.2)
    assert "h264" in stream
    assert "540x720" in stream  # the picture's 3:4 shape, longer side 720


@pytest.mark.parametrize(
    ("arguments", "field", "kind"),
    [
        ({"image_url": "x"}, "prompt", "value_error.missing"),
        ({"prompt": "move"}, "image_url", "value_error.missing"),
        ({"prompt": "move", "image_url": "x", "duration": 5}, "duration", "type_error"),
        ({"prompt": "move", "image_url": "x", "duration": "7"}, "duration", "type_error.enum"),
        (
            {"prompt": "move", "image_url": "x", "cfg_scale": 2},
            "cfg_scale",
            "value_error.number.not_in_range",
        ),
    ],
)
async def test_bad_arguments_fail_with_422_detail(
    fal: fal_client.AsyncClient, arguments: dict, field: str, kind: str
) -> None:
    handle = await fal.submit(ANIMATOR, arguments)
    with pytest.raises(fal_client.FalClientHTTPError) as raised:
        await handle.get()
    assert raised.value.status_code == 422
    (detail,) = raised.value.response.json()["detail"]
    assert (detail["loc"], detail["type"]) == (["body", field], kind)


async def test_a_file_that_is_not_a_picture_fails_with_422(fal: fal_client.AsyncClient) -> None:
    url = await fal.upload(b"not a picture", "image/jpeg", "broken.jpg")
    handle = await fal.submit(ANIMATOR, {"prompt": "move", "image_url": url})
    with pytest.raises(fal_client.FalClientHTTPError) as raised:
        await handle.get()
    assert raised.value.status_code == 422
    assert raised.value.response.json()["detail"][0]["type"] == "image_load_error"
