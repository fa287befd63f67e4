"""Several generations ordered and paid as one: a pack (`services/bot/packs`).

One transaction charges the whole price as one ledger entry keyed by the order
(`charge:pack:<order id>`), inserts every generation with the order's id and queues its
`GenerationRequested` with `credits = 0` (the trainer charges nothing more); the spend
limit, submission, tracking and delivery are those of any generation. The order id comes
from the pressed card, so a second press finds the charge's key taken and changes nothing.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from services.bot.generation.service import (
    COLUMNS,
    PRODUCER,
    Generation,
    GenerationSpec,
    requested,
)
from services.kit import credits
from services.kit.db import UnitOfWork


class AlreadyOrdered(Exception):
    """This order was charged before (a second press): nothing was written."""


class AvatarNotReady(Exception):
    """The avatar is not the user's completed one: nothing was written."""


async def order(
    pool: asyncpg.Pool,
    *,
    user_id: int,
    order_id: UUID,
    specs: list[GenerationSpec],
    price: int,
    chat_id: int,
) -> list[Generation]:
    """Charge `price` once and request every spec. Raises `AlreadyOrdered`,
    `credits.InsufficientCredits` or `AvatarNotReady`, each writing nothing."""
    async with UnitOfWork(pool, PRODUCER) as uow:
        conn = uow.conn
        await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
        if price > 0:
            posting = await credits.post(
                conn,
                user_id=user_id,
                kind=credits.Kind.GENERATION_CHARGE,
                amount=-price,
                key=credits.pack_charge_key(str(order_id)),
                subject=str(order_id),
            )
            if posting.duplicate:
                raise AlreadyOrdered(str(order_id))
        elif await conn.fetchval(
            "SELECT 1 FROM generations WHERE pack_order_id = $1 LIMIT 1", order_id
        ):
            raise AlreadyOrdered(str(order_id))
        avatars = {spec.avatar_id for spec in specs if spec.avatar_id is not None}
        for avatar_id in avatars:
            if not await conn.fetchval(
                "UPDATE avatars SET generation_count = generation_count + $3 "
                "WHERE id = $1 AND user_id = $2 AND status = 'completed' RETURNING 1",
                avatar_id, user_id, len(specs),
            ):  # fmt: skip
                raise AvatarNotReady(str(avatar_id))
        made = [await _insert(uow, user_id, order_id, spec, chat_id) for spec in specs]
    return made


async def _insert(
    uow: UnitOfWork, user_id: int, order_id: UUID, spec: GenerationSpec, chat_id: int
) -> Generation:
    row = await uow.conn.fetchrow(
        "INSERT INTO generations (user_id, avatar_id, prompt, user_prompt, style_id, "
        "aspect_ratio, num_images, seed, lora_scale, progress_chat_id, pack_order_id) "
        f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLUMNS}",
        user_id, spec.avatar_id, spec.prompt, spec.user_prompt, spec.style_id,
        spec.aspect_ratio, spec.num_images, spec.seed, spec.lora_scale, chat_id, order_id,
    )  # fmt: skip
    generation = Generation.from_record(row)
    uow.publish(requested(generation, 0))  # the pack's total was charged at the press
    return generation
