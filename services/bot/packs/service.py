"""Ordering a pack: one generation per style with the avatar's prompt, charged as one order
(`generation.batch`); the order id is derived from the pressed card, so pressing it twice
orders once."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from contracts import derived_event_id
from services.bot.app.models import Avatar
from services.bot.generation import batch
from services.bot.generation.prompts import Subject, build
from services.bot.generation.service import Generation, GenerationSpec, new_seed
from services.bot.packs.catalogue import Pack

#: FAL's default LoRA strength, as the wizard records it.
LORA_SCALE = 1.0


def order_id(user_id: int, pack: Pack, avatar_id: UUID, nonce: str) -> UUID:
    return UUID(derived_event_id("pack_order", user_id, pack.id, avatar_id, nonce))


def specs(pack: Pack, avatar: Avatar) -> list[GenerationSpec]:
    subject = Subject.of(avatar)
    return [
        GenerationSpec(
            avatar_id=avatar.id,
            prompt=build(subject, style=style, text=None),
            user_prompt=None,
            style_id=style.id,
            aspect_ratio=pack.aspect_ratio,
            num_images=pack.images,
            seed=new_seed(),
            lora_scale=LORA_SCALE,
        )
        for style in pack.styles
    ]


class PackOrders:
    """What the order handler needs: the pool and the price of a picture."""

    def __init__(self, pool: asyncpg.Pool, per_image: int):
        self.pool = pool
        self.per_image = per_image

    async def order(
        self, *, user_id: int, pack: Pack, avatar: Avatar, nonce: str, chat_id: int
    ) -> list[Generation]:
        """Raises what `batch.order` raises (already ordered, not enough credits, avatar)."""
        return await batch.order(
            self.pool,
            user_id=user_id,
            order_id=order_id(user_id, pack, avatar.id, nonce),
            specs=specs(pack, avatar),
            price=pack.price(self.per_image),
            chat_id=chat_id,
        )
