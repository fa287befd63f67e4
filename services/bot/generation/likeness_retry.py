"""A free second chance for weak pictures: when a delivered generation of a portrait avatar
has pictures below the "low" likeness band, the bot re-draws that many once, with a new
seed, at no charge (`docs/likeness.md`).

Bounded: only a generation that is not itself a re-draw, not part of a pack and not an
upscale or reference job gets one; the unique partial index `uq_generations_likeness_retry`
makes it one per generation even when a delivery is repeated (at-least-once) or races.
The re-draw is an ordinary generation (`parent_id` = the weak one, `likeness_retry`),
requested with price 0, so the trainer charges nothing; its pictures come as their own
album with their scores, so the user sees both and keeps the better.
"""

from __future__ import annotations

import logging

import asyncpg

from services.bot.app.metrics import BotMetrics
from services.bot.app.sender import Sender
from services.bot.app.texts import Translator
from services.bot.generation.service import (
    COLUMNS,
    PRODUCER,
    Generation,
    new_seed,
    requested,
)
from services.kit.db import UnitOfWork

log = logging.getLogger(__name__)


class LikenessRetry:
    def __init__(self, pool: asyncpg.Pool, sender: Sender, metrics: BotMetrics | None = None):
        self.pool = pool
        self.sender = sender
        self.metrics = metrics or BotMetrics()

    async def offer(self, generation: Generation, weak: int, t: Translator) -> Generation | None:
        """The re-draw of `weak` pictures, requested; None when none is due."""
        if weak <= 0 or generation.kind != "image" or generation.avatar_id is None:
            return None
        if generation.pack_order_id is not None:
            return None
        due = await self.pool.fetchval(
            "SELECT NOT g.likeness_retry AND NOT EXISTS (SELECT 1 FROM generations r "
            "WHERE r.parent_id = g.id AND r.likeness_retry) FROM generations g WHERE g.id = $1",
            generation.id,
        )
        if not due:
            return None
        chat = generation.progress_chat_id or generation.user_id
        notice = await self.sender.send(chat, t("likeness.retrying", count=weak))
        retry = await self._insert(generation, weak, chat, notice.message_id if notice else None)
        if retry is None:  # another delivery of the same generation got there first
            if notice is not None:
                await self.sender.delete(chat, notice.message_id)
            return None
        self.metrics.likeness_retries.inc()
        log.info("likeness retry", extra={"generation_id": str(generation.id), "weak": weak})
        return retry

    async def _insert(
        self, parent: Generation, count: int, chat: int, message: int | None
    ) -> Generation | None:
        async with UnitOfWork(self.pool, PRODUCER) as uow:
            row = await uow.conn.fetchrow(
                "INSERT INTO generations (user_id, avatar_id, prompt, user_prompt, style_id, "
                "aspect_ratio, num_images, seed, lora_scale, parent_id, progress_chat_id, "
                "progress_message_id, likeness_retry) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, true) "
                "ON CONFLICT (parent_id) WHERE likeness_retry DO NOTHING "
                f"RETURNING {COLUMNS}",
                parent.user_id, parent.avatar_id, parent.prompt, parent.user_prompt,
                parent.style_id, parent.aspect_ratio, count, new_seed(), parent.lora_scale,
                parent.id, chat, message,
            )  # fmt: skip
            if row is None:
                return None
            retry = Generation.from_record(row)
            uow.publish(requested(retry, 0))
        return retry
