"""What an upscale is sent with: our stored picture uploaded to FAL's storage, the factor,
quiet settings that keep the face, and the cost (FAL bills the upscaler by megapixel).

`fal-ai/clarity-upscaler` (docs/generation.md, "Upscaling"): `image_url` + `upscale_factor`
(1–4; we offer 2 and 4) → `{"image": {url, width, height, content_type, …}, "seed"}`.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from nats.js.object_store import ObjectStore

from contracts import FailureReason, GenerationRequested, UpscaleSource
from services.trainer.config import TrainerConfig
from services.trainer.fal_gateway import FalGateway
from services.trainer.generation_plan import Refused
from services.trainer.source_picture import check_row, check_spend, upload

UPSCALER = "fal-ai/clarity-upscaler"
FACTORS = (2, 4)


def estimate_upscale_cost(source: UpscaleSource, usd_per_megapixel: float) -> float:
    """$ per output megapixel (the page's price; we read it as of the output)."""
    pixels = source.width * source.height * source.factor**2
    return round(pixels / 1_000_000 * usd_per_megapixel, 4)


def upscale_arguments(image_url: str, event: GenerationRequested) -> dict[str, Any]:
    """Low creativity, high resemblance: an enlargement of the same picture, not a new one."""
    assert event.upscale is not None
    return {
        "image_url": image_url,
        "upscale_factor": event.upscale.factor,
        "creativity": 0.2,
        "resemblance": 0.8,
        "seed": event.seed,
        "enable_safety_checker": True,
    }


async def plan_upscale(
    pool: asyncpg.Pool,
    event: GenerationRequested,
    config: TrainerConfig,
    fal: FalGateway,
    images: ObjectStore | None,
) -> tuple[dict[str, Any], float]:
    """Refused when the row is not this user's, was cancelled, the factor is not offered,
    the picture is gone, or the daily spend limit is reached; else the picture is uploaded
    to FAL and the arguments and cost returned."""
    source = event.upscale
    assert source is not None
    await check_row(pool, event)
    if source.factor not in FACTORS:
        raise Refused(FailureReason.FAL_REJECTED_INPUT, f"upscale factor {source.factor}")
    cost = estimate_upscale_cost(source, config.upscale_cost_per_megapixel_usd)
    await check_spend(pool, config)
    url = await upload(images, fal, source.object_name, "picture to upscale")
    return upscale_arguments(url, event), cost
