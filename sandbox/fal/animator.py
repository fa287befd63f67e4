"""`fal-ai/kling-video/v2.1/standard/image-to-video`: its documented input schema, checked
like FAL (422 `detail` lists), and a real output — a playable MP4 (H.264) made locally from
the input picture with a slow zoom, as long as the requested `duration`.

Schema (https://fal.ai/models/fal-ai/kling-video/v2.1/standard/image-to-video/llms.txt):
`prompt` (required string), `image_url` (required string), `duration` (`DurationEnum`:
"5" or "10", default "5"), `negative_prompt` (string, default "blur, distort, and low
quality"), `cfg_scale` (float 0–1, default 0.5). Output: `{"video": {url, content_type,
file_name, file_size}}`. The encoder is the ffmpeg binary the `imageio-ffmpeg` wheel ships
(libx264); frames are few (`FPS`) so a job costs the sandbox well under a second.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import imageio_ffmpeg

APP_ID = "fal-ai/kling-video/v2.1/standard/image-to-video"
DURATIONS = ("5", "10")
#: Ours: frames per second of the emulated clip (FAL's Kling clips are 24–30 fps).
FPS = 8
#: Ours: the clip's longer side in pixels (Kling's standard tier is 720p).
LONG_SIDE = 720

_NUMBERS = (int, float)
_TYPES: dict[str, tuple[type, ...]] = {
    "prompt": (str,),
    "image_url": (str,),
    "duration": (str,),
    "negative_prompt": (str,),
    "cfg_scale": _NUMBERS,
}
_REQUIRED = ("prompt", "image_url")


def _err(field: str, msg: str, type_: str) -> dict[str, Any]:
    return {"loc": ["body", field], "msg": msg, "type": type_}


def validate(args: dict[str, Any]) -> list[dict[str, Any]]:
    """FAL-style (pydantic) errors for the arguments; empty when valid. Unknown fields are
    ignored, as pydantic models on FAL do by default."""
    errors = [_err(f, "field required", "value_error.missing") for f in _REQUIRED if f not in args]
    for name, value in args.items():
        kinds = _TYPES.get(name)
        if kinds is None or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, kinds):
            errors.append(_err(name, f"invalid type for {name}", "type_error"))
    if errors:
        return errors
    duration = args.get("duration")
    if duration is not None and duration not in DURATIONS:
        msg = "value is not a valid enumeration member; permitted: '5', '10'"
        errors.append(_err("duration", msg, "type_error.enum"))
    cfg = args.get("cfg_scale")
    if cfg is not None and not 0.0 <= cfg <= 1.0:
        msg = "ensure this value is between 0 and 1"
        errors.append(_err("cfg_scale", msg, "value_error.number.not_in_range"))
    if not args["prompt"].strip():
        errors.append(_err("prompt", "ensure this value has at least 1 characters", "value_error"))
    return errors


def _size(width: int, height: int) -> tuple[int, int]:
    """The clip's size: the picture's shape, longer side `LONG_SIDE`, both sides even."""
    scale = LONG_SIDE / max(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def animate(data: bytes, width: int, height: int, seconds: int) -> tuple[bytes, int, int]:
    """An MP4 (H.264, yuv420p, faststart) of `seconds` × `FPS` frames zooming slowly into the
    picture; ValueError when ffmpeg cannot read the picture."""
    out_w, out_h = _size(width, height)
    frames = seconds * FPS
    zoom = f"zoom+{0.12 / frames:.5f}"
    video_filter = (
        f"scale={out_w * 2}:{out_h * 2},"
        f"zoompan=z='min({zoom},1.12)':x='iw/2-(iw/zoom/2)':y='ih/2-(ih/zoom/2)'"
        f":d={frames}:s={out_w}x{out_h}:fps={FPS}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "in", Path(tmp) / "out.mp4"
        source.write_bytes(data)
        command = [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-i", str(source), "-vf", video_filter, "-frames:v", str(frames),
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", str(target),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, timeout=60, check=False)
        if done.returncode != 0 or not target.exists():
            raise ValueError(done.stderr.decode(errors="replace")[-300:])
        return target.read_bytes(), out_w, out_h
