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
from services.trainer.generation_plan import Refused, upload_stored
from services.trainer.spend import spent_last_day

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
    row = await pool.fetchrow(
        "SELECT user_id, status FROM generations WHERE id = $1", event.generation_id
    )
    if row is None or row["user_id"] != event.user_id:
        raise Refused(FailureReason.INTERNAL, "no such generation for this user")
    if row["status"] == "cancelled":
        raise Refused(FailureReason.CANCELLED, "cancelled before submission")
    if source.factor not in FACTORS:
        raise Refused(FailureReason.FAL_REJECTED_INPUT, f"upscale factor {source.factor}")
    cost = estimate_upscale_cost(source, config.upscale_cost_per_megapixel_usd)
    spent = await spent_last_day(pool)
    if spent >= config.daily_spend_limit_usd:
        raise Refused(FailureReason.SPEND_LIMIT, f"daily spend {spent:.2f} reached")
    url = await upload_stored(fal, images, source.object_name, "picture to upscale")
    return upscale_arguments(url, event), cost
