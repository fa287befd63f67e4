"""`fal-ai/clarity-upscaler`: its documented input schema, checked like FAL (422 `detail`
lists), and a real output — the input picture resized by exactly `upscale_factor`.

Schema (https://fal.ai/models/fal-ai/clarity-upscaler/llms.txt and fal-client's endpoint
types): `image_url` (required string), `prompt`, `negative_prompt` (strings),
`upscale_factor` (float 1–4, default 2), `creativity` (float 0–1, default 0.35),
`resemblance` (float, default 0.6), `guidance_scale` (float, default 4),
`num_inference_steps` (int, default 18), `seed` (int), `enable_safety_checker` (bool).
Output: `{"image": {url, content_type, file_name, file_size, width, height}, "seed",
"timings"}`. The page names no maximum input size; `max_input_pixels` is an *assumed*
limit (switchable) past which the job fails with 422 `image_too_large`.
"""

from __future__ import annotations

import io
import random
from typing import Any

from PIL import Image, UnidentifiedImageError

APP_ID = "fal-ai/clarity-upscaler"
#: Assumed: the documented page names no limit; 2048 × 2048 pixels of input.
MAX_INPUT_PIXELS = 2048 * 2048

_NUMBERS = (int, float)
_TYPES: dict[str, tuple[type, ...]] = {
    "image_url": (str,),
    "prompt": (str,),
    "negative_prompt": (str,),
    "upscale_factor": _NUMBERS,
    "creativity": _NUMBERS,
    "resemblance": _NUMBERS,
    "guidance_scale": _NUMBERS,
    "num_inference_steps": (int,),
    "seed": (int,),
    "enable_safety_checker": (bool,),
}
#: Documented ranges (inclusive).
_RANGES: dict[str, tuple[float, float]] = {
    "upscale_factor": (1.0, 4.0),
    "creativity": (0.0, 1.0),
}


def _err(field: str, msg: str, type_: str) -> dict[str, Any]:
    return {"loc": ["body", field], "msg": msg, "type": type_}


def validate(args: dict[str, Any]) -> list[dict[str, Any]]:
    """FAL-style (pydantic) errors for the arguments; empty when valid. Unknown fields are
    ignored, as pydantic models on FAL do by default."""
    errors = []
    if "image_url" not in args:
        errors.append(_err("image_url", "field required", "value_error.missing"))
    for name, value in args.items():
        kinds = _TYPES.get(name)
        if kinds is None or value is None:
            continue
        if (bool not in kinds and isinstance(value, bool)) or not isinstance(value, kinds):
            errors.append(_err(name, f"invalid type for {name}", "type_error"))
    if errors:
        return errors
    for name, (low, high) in _RANGES.items():
        value = args.get(name)
        if value is not None and not low <= value <= high:
            msg = f"ensure this value is between {low:g} and {high:g}"
            errors.append(_err(name, msg, "value_error.number.not_in_range"))
    return errors


def upscale(data: bytes, factor: float, max_input_pixels: int) -> tuple[bytes, int, int]:
    """The input resized to `round(side × factor)` as JPEG; ValueError for an undecodable
    input, OverflowError for one over `max_input_pixels`."""
    try:
        with Image.open(io.BytesIO(data)) as source:
            width, height = source.size
            if width * height > max_input_pixels:
                raise OverflowError(f"{width}x{height}")
            target = (round(width * factor), round(height * factor))
            image = source.convert("RGB").resize(target, Image.Resampling.BICUBIC)
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ValueError(str(exc)) from exc
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue(), target[0], target[1]


def seed_of(args: dict[str, Any]) -> int:
    seed = args.get("seed")
    return int(seed) if seed is not None else random.randrange(2**31)
