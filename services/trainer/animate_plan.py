"""What an animation is sent with: our stored picture uploaded to FAL's storage, the motion
prompt, the clip's length, and the cost (FAL bills the clip by its seconds).

`fal-ai/kling-video/v2.1/standard/image-to-video` (docs/generation.md, "Animation"):
`prompt` + `image_url` (+ `duration` "5"/"10", `negative_prompt`, `cfg_scale`) →
`{"video": {url, content_type, file_name, file_size}}`.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from nats.js.object_store import ObjectStore

from contracts import AnimateSource, FailureReason, GenerationRequested
from services.trainer.config import TrainerConfig
from services.trainer.fal_gateway import FalGateway
from services.trainer.generation_plan import Refused
from services.trainer.source_picture import check_row, check_spend, upload

ANIMATOR = "fal-ai/kling-video/v2.1/standard/image-to-video"
SECONDS = (5, 10)
#: Kept out of every clip: the page's own default, plus what spoils a portrait.
NEGATIVE_PROMPT = "blur, distort, and low quality, deformed face, extra limbs"


def estimate_animation_cost(source: AnimateSource, usd_for_5s: float) -> float:
    """$ of one clip: the 5-second price, and a fifth of it per further second (the page:
    $0.28 for 5 s, $0.056 per additional second)."""
    return round(usd_for_5s * max(source.seconds, 5) / 5, 4)


def animate_arguments(image_url: str, source: AnimateSource) -> dict[str, Any]:
    """The documented fields only; `duration` is an enum of strings on FAL."""
    return {
        "prompt": source.motion_prompt,
        "image_url": image_url,
        "duration": str(source.seconds),
        "negative_prompt": NEGATIVE_PROMPT,
        "cfg_scale": 0.5,
    }


async def plan_animation(
    pool: asyncpg.Pool,
    event: GenerationRequested,
    config: TrainerConfig,
    fal: FalGateway,
    images: ObjectStore | None,
) -> tuple[dict[str, Any], float]:
    """Refused when the row is not this user's, was cancelled, the length is not offered,
    the daily spend limit is reached, or the picture was deleted before the job reached FAL
    (`INTERNAL`: refunded); else the picture is uploaded to FAL and the arguments and cost
    returned. Deleting the picture after this point changes nothing: FAL has its copy."""
    source = event.animate
    assert source is not None
    await check_row(pool, event)
    if source.seconds not in SECONDS:
        raise Refused(FailureReason.FAL_REJECTED_INPUT, f"animation of {source.seconds} s")
    cost = estimate_animation_cost(source, config.animation_cost_5s_usd)
    await check_spend(pool, config)
    kept = await pool.fetchval(
        "SELECT 1 FROM generated_images WHERE id = $1 AND user_id = $2",
        source.image_id,
        event.user_id,
    )
    if kept is None:
        raise Refused(FailureReason.INTERNAL, "the picture to animate was deleted")
    url = await upload(images, fal, source.object_name, "picture to animate")
    return animate_arguments(url, source), cost
