"""Animations in PostgreSQL: a `generations` row naming the source picture and the clip's
seconds, and its `GenerationRequested` (with the picture and the motion prompt) in one
transaction (outbox).

One running animation per picture: under the user's row lock, an animation of the same
picture that is `pending`/`submitted` is answered "already being animated", so a double
press (or the skip button pressed after the prompt was sent) starts one job and charges
once. The balance is checked for the user's sake; the trainer's charge at submission
enforces it. A finished video does not block another one (another motion, another clip).
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from contracts import AnimateSource
from services.bot.app.pricing import Pricing
from services.bot.gallery.service import ImageItem, ImageService
from services.bot.generation.service import (
    ACTIVE_WINDOW,
    COLUMNS,
    PRODUCER,
    Generation,
    GenerationRefused,
    GenerationService,
    new_seed,
    requested,
)
from services.kit import credits
from services.kit.db import UnitOfWork

#: The clip's length we sell (the endpoint offers 5 and 10; "a few seconds").
SECONDS = 5
#: Sent when the user skips the motion prompt: gentle, face-keeping motion.
DEFAULT_MOTION = (
    "subtle natural motion, the person breathes and blinks, a slight smile, "
    "hair moving gently, slow cinematic camera push-in"
)
_RUNNING = f"""
SELECT 1 FROM generations
WHERE user_id = $1 AND source_image_id = $2 AND animation_seconds IS NOT NULL
  AND status IN ('pending', 'submitted') AND created_at > now() - interval '{ACTIVE_WINDOW}'
LIMIT 1
"""


class AlreadyRunning(Exception):
    """This picture is being animated right now (a second press)."""


class AnimationService:
    def __init__(
        self, pool: asyncpg.Pool, pricing: Pricing, images: ImageService, max_active: int = 2
    ):
        self.pool = pool
        self.pricing = pricing
        self.images = images
        self.max_active = max_active

    @property
    def price(self) -> int:
        return self.pricing.animation

    async def source(self, user_id: int, image_id: UUID) -> ImageItem | None:
        """The picture to animate: the user's, a picture (not a video) with a known size."""
        item = await self.images.get(user_id, image_id)
        if item is None or item.is_video or not item.width or not item.height:
            return None
        return item

    async def create(self, user_id: int, image_id: UUID, motion: str | None) -> Generation | None:
        """The new animation, or None when the picture is not the user's (or is gone).
        Raises AlreadyRunning, GenerationRefused("limit") or InsufficientCredits."""
        source = await self.source(user_id, image_id)
        if source is None:
            return None
        assert source.width is not None
        assert source.height is not None
        price = self.price
        prompt = motion or DEFAULT_MOTION
        async with UnitOfWork(self.pool, PRODUCER) as uow:
            conn = uow.conn
            await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
            if await conn.fetchval(_RUNNING, user_id, image_id) is not None:
                raise AlreadyRunning
            if await GenerationService._active(conn, user_id) >= self.max_active:
                raise GenerationRefused("limit")
            if price and (balance := await credits.balance(conn, user_id)) < price:
                raise credits.InsufficientCredits(balance, price)
            row = await conn.fetchrow(
                "INSERT INTO generations (user_id, avatar_id, prompt, user_prompt, style_id, "
                "aspect_ratio, num_images, seed, source_image_id, animation_seconds) "
                "VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9) "
                f"RETURNING {COLUMNS}",
                user_id, source.avatar_id, prompt, motion, source.style_id, source.aspect_ratio,
                new_seed(), image_id, SECONDS,
            )  # fmt: skip
            generation = Generation.from_record(row)
            picture = AnimateSource(
                image_id=str(image_id),
                object_name=source.object_name,
                width=source.width,
                height=source.height,
                seconds=SECONDS,
                motion_prompt=prompt,
            )
            uow.publish(requested(generation, price, with_avatar=False, animate=picture))
        return generation
