"""What a generation is sent with (endpoint, size preset, quality settings, cost), and
whether it may be sent at all.

The aspect ratios the bot offers map to FAL's `image_size` presets; the cost estimate
follows FAL's FLUX pricing by output megapixels (both pure, unit-tested).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from contracts import FailureReason, GenerationRequested
from services.trainer.config import TrainerConfig
from services.trainer.lora_source import AVATAR_COLUMNS, LoraSource
from services.trainer.spend import spent_last_day

FLUX_LORA = "fal-ai/flux-lora"
FLUX_DEV = "fal-ai/flux/dev"

#: aspect ratio -> (FAL `image_size` preset, width, height)
IMAGE_SIZES: dict[str, tuple[str, int, int]] = {
    "1:1": ("square_hd", 1024, 1024),
    "3:4": ("portrait_4_3", 768, 1024),
    "4:3": ("landscape_4_3", 1024, 768),
    "9:16": ("portrait_16_9", 576, 1024),
    "16:9": ("landscape_16_9", 1024, 576),
}


class Refused(Exception):
    """The request cannot be submitted; `reason` is what the user is told."""

    def __init__(self, reason: FailureReason, detail: str):
        super().__init__(detail)
        self.reason = reason


def image_size(aspect_ratio: str) -> tuple[str, int, int]:
    """FAL's size preset and the pixel size it yields; Refused for a ratio we do not offer."""
    try:
        return IMAGE_SIZES[aspect_ratio]
    except KeyError:
        raise Refused(FailureReason.FAL_REJECTED_INPUT, f"aspect ratio {aspect_ratio!r}") from None


def estimate_cost(aspect_ratio: str, num_images: int, usd_per_megapixel: float) -> float:
    """FAL bills FLUX by output megapixels: width × height × images × price."""
    _, width, height = image_size(aspect_ratio)
    return round(width * height / 1_000_000 * num_images * usd_per_megapixel, 4)


def generation_arguments(
    event: GenerationRequested, lora_url: str | None, lora_scale: float
) -> dict[str, Any]:
    """The FAL input for `fal-ai/flux-lora` (with the avatar's LoRA) or `fal-ai/flux/dev`."""
    preset, _, _ = image_size(event.aspect_ratio)
    arguments: dict[str, Any] = {
        "prompt": event.prompt,
        "image_size": preset,
        "num_images": event.num_images,
        "seed": event.seed,
        "num_inference_steps": 28,
        "guidance_scale": 3.5,
        "enable_safety_checker": True,
        "output_format": "jpeg",
    }
    if lora_url is not None:
        arguments["loras"] = [{"path": lora_url, "scale": lora_scale}]
    return arguments


async def plan_generation(
    pool: asyncpg.Pool,
    event: GenerationRequested,
    config: TrainerConfig,
    loras: LoraSource | None = None,
) -> tuple[dict[str, Any], float]:
    """Check everything that needs no FAL call; returns the arguments and the cost. With
    `loras`, the LoRA's URL is one FAL can still fetch (`lora_source.py`; that may check
    FAL's CDN or upload our copy); without, the URL FAL gave when the training ended.

    Refused when the generation is not this user's, was cancelled, names an avatar that is
    not the user's completed one, asks for a size we do not offer, or the daily spend
    limit (shared with trainings) is reached.
    """
    row = await pool.fetchrow(
        "SELECT user_id, lora_scale, status FROM generations WHERE id = $1",
        event.generation_id,
    )
    if row is None or row["user_id"] != event.user_id:
        raise Refused(FailureReason.INTERNAL, "no such generation for this user")
    if row["status"] == "cancelled":
        raise Refused(FailureReason.CANCELLED, "cancelled before submission")
    lora = await lora_url(pool, event, loras) if event.avatar_id else None
    scale = row["lora_scale"] or config.generation_lora_scale
    arguments = generation_arguments(event, lora, round(float(scale), 3))  # REAL → 0.8
    cost = estimate_cost(
        event.aspect_ratio, event.num_images, config.generation_cost_per_megapixel_usd
    )
    spent = await spent_last_day(pool)
    if spent >= config.daily_spend_limit_usd:
        raise Refused(FailureReason.SPEND_LIMIT, f"daily spend {spent:.2f} reached")
    return arguments, cost


async def lora_url(pool: asyncpg.Pool, event: GenerationRequested, loras: LoraSource | None) -> str:
    """The LoRA of a completed avatar of this user; anything else is refused."""
    try:
        avatar_id = uuid.UUID(event.avatar_id or "")
    except ValueError:
        raise Refused(FailureReason.FAL_REJECTED_INPUT, "avatar id is not a uuid") from None
    avatar = await pool.fetchrow(
        f"SELECT user_id, status, {AVATAR_COLUMNS} FROM avatars WHERE id = $1",
        avatar_id,
    )
    if (
        avatar is None
        or avatar["user_id"] != event.user_id
        or avatar["status"] != "completed"
        or not avatar["diffusers_lora_file_url"]
    ):
        raise Refused(FailureReason.FAL_REJECTED_INPUT, "not a completed avatar of this user")
    if loras is not None:
        return await loras.url(avatar_id, avatar)
    return str(avatar["diffusers_lora_file_url"])
