"""What a reference photo is re-drawn with: the user's picture uploaded to FAL's storage,
the avatar's LoRA, the strength the user chose, and the cost (FAL bills by megapixel).

`fal-ai/flux-lora/image-to-image` (docs/generation.md, "Reference photos"): `prompt` and
`image_url` (required), `strength` (0.01–1), `loras`, `num_inference_steps` (1–50), `seed`,
`guidance_scale`, `num_images`, `enable_safety_checker`, `output_format` →
`{"images": [{url, width, height, content_type}], "seed", "has_nsfw_concepts", ...}`. No
`image_size` is sent: the output keeps the reference's own size (ours ≤ 2048 a side).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from nats.js.object_store import ObjectStore

from contracts import FailureReason, GenerationRequested, ReferenceSource
from services.trainer.config import TrainerConfig
from services.trainer.fal_gateway import FalGateway
from services.trainer.generation_plan import Refused, lora_url
from services.trainer.lora_source import LoraSource
from services.trainer.source_picture import check_spend, upload

IMAGE_TO_IMAGE = "fal-ai/flux-lora/image-to-image"
#: FAL's documented range of `strength`.
STRENGTH_RANGE = (0.01, 1.0)


def estimate_reference_cost(source: ReferenceSource, usd_per_megapixel: float) -> float:
    """$ per output megapixel; the output has the reference's size."""
    return round(source.width * source.height / 1_000_000 * usd_per_megapixel, 4)


def reference_arguments(
    image_url: str, event: GenerationRequested, lora: str, lora_scale: float
) -> dict[str, Any]:
    """The photo, the avatar's LoRA at the usual scale, and the user's strength."""
    assert event.reference is not None
    return {
        "prompt": event.prompt,
        "image_url": image_url,
        "strength": event.reference.strength,
        "loras": [{"path": lora, "scale": lora_scale}],
        "num_images": 1,
        "num_inference_steps": 28,
        "guidance_scale": 3.5,
        "seed": event.seed,
        "enable_safety_checker": True,
        "output_format": "jpeg",
    }


async def plan_reference(
    pool: asyncpg.Pool,
    event: GenerationRequested,
    config: TrainerConfig,
    fal: FalGateway,
    loras: LoraSource | None,
    photos: ObjectStore | None,
) -> tuple[dict[str, Any], float]:
    """Refused when the row is not this user's, was cancelled, the strength is out of range,
    the avatar is not the user's completed one, the photo is gone (erased meanwhile), or the
    daily spend limit is reached; else the photo is uploaded to FAL."""
    source = event.reference
    assert source is not None
    row = await pool.fetchrow(
        "SELECT user_id, lora_scale, status FROM generations WHERE id = $1", event.generation_id
    )
    if row is None or row["user_id"] != event.user_id:
        raise Refused(FailureReason.INTERNAL, "no such generation for this user")
    if row["status"] == "cancelled":
        raise Refused(FailureReason.CANCELLED, "cancelled before submission")
    low, high = STRENGTH_RANGE
    if not low <= source.strength <= high:
        raise Refused(FailureReason.FAL_REJECTED_INPUT, f"strength {source.strength}")
    if not event.avatar_id:
        raise Refused(FailureReason.FAL_REJECTED_INPUT, "a reference needs an avatar")
    lora = await lora_url(pool, event, loras)
    cost = estimate_reference_cost(source, config.generation_cost_per_megapixel_usd)
    await check_spend(pool, config)
    url = await upload(photos, fal, source.object_name, "reference photo")
    scale = round(float(row["lora_scale"] or config.generation_lora_scale), 3)
    return reference_arguments(url, event, lora, scale), cost
