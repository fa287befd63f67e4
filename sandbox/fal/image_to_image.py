"""`fal-ai/flux-lora/image-to-image`: its documented input schema, checked like FAL (422
`detail` lists), and a real output — the input picture re-drawn, more of it the higher the
`strength`, at the input's size (or the requested `image_size`).

Schema (https://fal.ai/models/fal-ai/flux-lora/image-to-image/llms.txt): `prompt` (required
string), `image_url` (required string), `strength` (float 0.01–1, default 0.85),
`image_size` (preset or `{width, height}`), `num_inference_steps` (int 1–50, default 28),
`seed` (int), `loras` (list of `{path, scale}`), `guidance_scale` (float 0–35, default 3.5),
`num_images` (int 1–4), `enable_safety_checker` (bool), `output_format` (`jpeg`/`png`).
Output: `{"images": [{url, width, height, content_type}], "timings", "seed",
"has_nsfw_concepts", "prompt"}` like `fal-ai/flux-lora`. The page names no input limit;
`MAX_INPUT_PIXELS` is *assumed* (4096 × 4096) past which the job fails 422
`image_too_large`. That the output keeps the input's size when no `image_size` is given is
*assumed* too (the page does not say).
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, UnidentifiedImageError

from sandbox.fal import images

APP_ID = "fal-ai/flux-lora/image-to-image"
MAX_INPUT_PIXELS = 4096 * 4096

_NUMBERS = (int, float)
_TYPES: dict[str, tuple[type, ...]] = {
    "prompt": (str,),
    "image_url": (str,),
    "strength": _NUMBERS,
    "image_size": (str, dict),
    "num_inference_steps": (int,),
    "seed": (int,),
    "loras": (list,),
    "guidance_scale": _NUMBERS,
    "num_images": (int,),
    "enable_safety_checker": (bool,),
    "output_format": (str,),
}
_REQUIRED = ("prompt", "image_url")
#: Documented ranges (inclusive).
_RANGES: dict[str, tuple[float, float]] = {
    "strength": (0.01, 1.0),
    "num_inference_steps": (1, 50),
    "guidance_scale": (0.0, 35.0),
    "num_images": (1, 4),
}


def _err(loc: list[Any], msg: str, type_: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": type_}


def validate(args: dict[str, Any]) -> list[dict[str, Any]]:
    """FAL-style (pydantic) errors for the arguments; empty when valid. Unknown fields are
    ignored, as pydantic models on FAL do by default."""
    errors = [
        _err([f], "field required", "value_error.missing") for f in _REQUIRED if f not in args
    ]
    for name, value in args.items():
        kinds = _TYPES.get(name)
        if kinds is None or value is None:
            continue
        if (bool not in kinds and isinstance(value, bool)) or not isinstance(value, kinds):
            errors.append(_err([name], f"invalid type for {name}", "type_error"))
    if errors:
        return errors
    for name, (low, high) in _RANGES.items():
        value = args.get(name)
        if value is not None and not low <= value <= high:
            msg = f"ensure this value is between {low:g} and {high:g}"
            errors.append(_err([name], msg, "value_error.number.not_in_range"))
    if not str(args["prompt"]).strip():
        errors.append(
            _err(["prompt"], "ensure this value has at least 1 characters", "value_error")
        )
    size = args.get("image_size")
    if isinstance(size, str) and size not in images.IMAGE_SIZE_PRESETS:
        errors.append(_err(["image_size"], "value is not a valid enumeration member",
                           "type_error.enum"))  # fmt: skip
    if args.get("output_format", "jpeg") not in images.FORMATS:
        errors.append(_err(["output_format"], "value is not a valid enumeration member",
                           "type_error.enum"))  # fmt: skip
    for n, lora in enumerate(args.get("loras") or []):
        if not isinstance(lora, dict) or not isinstance(lora.get("path"), str):
            errors.append(_err(["loras", n, "path"], "field required", "value_error.missing"))
        elif not isinstance(lora.get("scale", 1.0), _NUMBERS):
            errors.append(_err(["loras", n, "scale"], "invalid type for scale", "type_error"))
    return errors


def input_size(data: bytes, max_input_pixels: int) -> tuple[int, int]:
    """The input's size; ValueError when undecodable, OverflowError past the limit."""
    try:
        with Image.open(io.BytesIO(data)) as source:
            width, height = source.size
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ValueError(str(exc)) from exc
    if width * height > max_input_pixels:
        raise OverflowError(f"{width}x{height}")
    return width, height


def output_size(args: dict[str, Any], source: tuple[int, int]) -> tuple[int, int]:
    size = args.get("image_size")
    if isinstance(size, str):
        return images.IMAGE_SIZE_PRESETS[size]
    if isinstance(size, dict):
        return int(size["width"]), int(size["height"])
    return source


def redraw(
    data: bytes, args: dict[str, Any], index: int, size: tuple[int, int], salt: str
) -> bytes:
    """The input at `size`, blended with a picture drawn for the prompt/seed/LoRA by
    `strength`: a real, distinct picture whose likeness to the input follows the strength."""
    fmt = args.get("output_format", "jpeg")
    drawn = images.draw(args["prompt"], int(args.get("seed") or 0), index, *size, fmt, salt)
    with Image.open(io.BytesIO(data)) as source, Image.open(io.BytesIO(drawn)) as new:
        base = source.convert("RGB").resize(size, Image.Resampling.BICUBIC)
        mixed = Image.blend(base, new.convert("RGB"), float(args.get("strength", 0.85)))
    buffer = io.BytesIO()
    pil_format, _ = images.FORMATS[fmt]
    mixed.save(buffer, format=pil_format, **({"quality": 85} if pil_format == "JPEG" else {}))
    return buffer.getvalue()
