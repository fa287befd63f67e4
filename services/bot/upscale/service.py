"""Upscales in PostgreSQL: a `generations` row naming the source picture and the factor, and
its `GenerationRequested` (with the picture to enlarge) in one transaction (outbox).

One job per picture and factor: under the user's row lock, a running upscale of the same
picture and factor is answered "already running", and a finished one whose picture is still
in the gallery is sent again instead of being paid twice — so a double press starts one job
and charges once. The balance is checked for the user's sake; the trainer's charge at
submission enforces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg
from nats.js.object_store import ObjectStore

from contracts import UpscaleSource
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

#: A picture's upscale of one factor: running, or done with its picture still kept.
_EXISTING = f"""
SELECT g.status::text AS status, i.id AS result_id
FROM generations g LEFT JOIN generated_images i ON i.generation_id = g.id
WHERE g.user_id = $1 AND g.source_image_id = $2 AND g.upscale_factor = $3
  AND (g.status IN ('pending', 'submitted')
       AND g.created_at > now() - interval '{ACTIVE_WINDOW}'
       OR g.status = 'completed' AND i.id IS NOT NULL)
ORDER BY g.created_at DESC LIMIT 1
"""


class AlreadyRunning(Exception):
    """This picture is being upscaled by this factor right now (a second press)."""


@dataclass(frozen=True, slots=True)
class AlreadyDone:
    """This picture was upscaled by this factor before; `result` is that picture."""

    result: ImageItem


class UpscaleService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        pricing: Pricing,
        images: ImageService,
        store: ObjectStore,
        max_active: int = 2,
    ):
        self.pool = pool
        self.store = store
        self.pricing = pricing
        self.images = images
        self.max_active = max_active

    def price(self, item: ImageItem, factor: int) -> int:
        return self.pricing.upscale(factor, item.width or 1024, item.height or 1024)

    async def create(
        self, user_id: int, image_id: UUID, factor: int
    ) -> Generation | AlreadyDone | None:
        """The new upscale, the earlier one (`AlreadyDone`), or None when the picture is not
        the user's. Raises AlreadyRunning, GenerationRefused("limit") or InsufficientCredits."""
        source = await self.images.get(user_id, image_id)
        if source is None or not source.width or not source.height:
            return None
        price = self.price(source, factor)
        async with UnitOfWork(self.pool, PRODUCER) as uow:
            conn = uow.conn
            await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
            existing = await conn.fetchrow(_EXISTING, user_id, image_id, factor)
            if existing is not None and existing["status"] != "completed":
                raise AlreadyRunning
            if existing is not None:
                done = await self.images.get(user_id, existing["result_id"])
                if done is not None:
                    return AlreadyDone(done)
            if await GenerationService._active(conn, user_id) >= self.max_active:
                raise GenerationRefused("limit")
            if price and (balance := await credits.balance(conn, user_id)) < price:
                raise credits.InsufficientCredits(balance, price)
            row = await conn.fetchrow(
                "INSERT INTO generations (user_id, avatar_id, prompt, user_prompt, style_id, "
                "aspect_ratio, num_images, seed, source_image_id, upscale_factor) "
                "VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9) "
                f"RETURNING {COLUMNS}",
                user_id, source.avatar_id, source.prompt, source.user_prompt, source.style_id,
                source.aspect_ratio, new_seed(), image_id, factor,
            )  # fmt: skip
            generation = Generation.from_record(row)
            source_picture = UpscaleSource(
                image_id=str(image_id),
                object_name=source.object_name,
                width=source.width,
                height=source.height,
                factor=factor,
            )
            uow.publish(requested(generation, price, with_avatar=False, upscale=source_picture))
        return generation
