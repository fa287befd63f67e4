"""Reference jobs in PostgreSQL: a `generations` row naming the reference photo and FAL's
strength, and its `GenerationRequested` (with the photo to re-draw) in one transaction
(outbox).

One job per photo at a time: under the user's row lock, a pending or submitted job of the
same photo is answered "already running", so a double press starts one job and is charged
once (the trainer charges at submission, keyed by the generation). A finished one may be
re-drawn again (another strength, another seed): that is a new press and a new price.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from contracts import ReferenceSource
from services.bot.app.pricing import Pricing
from services.bot.generation.prompts import Subject, from_caption
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
from services.bot.reference.strengths import strength_of
from services.kit import credits
from services.kit.db import UnitOfWork

#: What the photo shows, re-aimed at the avatar by the prompt builder ("photo of TOK woman, …").
SCENE = (
    "a person in the same pose, outfit and setting as in the photo, natural light, detailed face"
)
#: The aspect ratios the gallery knows, as width / height.
_RATIOS = {"1:1": 1.0, "3:4": 0.75, "4:3": 4 / 3, "9:16": 9 / 16, "16:9": 16 / 9}

_RUNNING = f"""
SELECT 1 FROM generations WHERE user_id = $1 AND reference_id = $2
  AND status IN ('pending', 'submitted') AND created_at > now() - interval '{ACTIVE_WINDOW}'
"""


class AlreadyRunning(Exception):
    """This photo is being re-drawn right now (a second press)."""


@dataclass(frozen=True, kw_only=True)
class Reference:
    """A stored reference photo of the user, for one avatar."""

    id: UUID
    avatar_id: UUID
    object_name: str
    width: int
    height: int


def aspect_of(width: int, height: int) -> str:
    """The nearest aspect ratio we name (the gallery's wording; the size is the photo's)."""
    return min(_RATIOS, key=lambda name: abs(_RATIOS[name] - width / height))


class ReferenceService:
    def __init__(self, pool: asyncpg.Pool, pricing: Pricing, max_active: int = 2):
        self.pool = pool
        self.pricing = pricing
        self.max_active = max_active

    @property
    def price(self) -> int:
        return self.pricing.reference

    async def get(self, user_id: int, reference_id: UUID) -> Reference | None:
        row = await self.pool.fetchrow(
            "SELECT id, avatar_id, object_name, width, height FROM reference_photos "
            "WHERE id = $1 AND user_id = $2",
            reference_id,
            user_id,
        )
        return Reference(**dict(row)) if row is not None else None

    async def balance(self, user_id: int) -> int:
        return await credits.balance(self.pool, user_id)

    async def create(self, user_id: int, reference_id: UUID, step: int) -> Generation | None:
        """The new job, or None when the photo is not the user's (or was erased). Raises
        AlreadyRunning, GenerationRefused("limit" | "avatar") or InsufficientCredits."""
        strength = strength_of(step)
        price = self.price
        async with UnitOfWork(self.pool, PRODUCER) as uow:
            conn = uow.conn
            await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
            row = await conn.fetchrow(
                "SELECT r.avatar_id, r.object_name, r.width, r.height, a.trigger_word, "
                "a.gender::text AS gender, a.training_type::text AS training_type "
                "FROM reference_photos r JOIN avatars a ON a.id = r.avatar_id "
                "WHERE r.id = $1 AND r.user_id = $2",
                reference_id,
                user_id,
            )
            if row is None:
                return None
            if await conn.fetchval(_RUNNING, user_id, reference_id):
                raise AlreadyRunning
            if await GenerationService._active(conn, user_id) >= self.max_active:
                raise GenerationRefused("limit")
            if price and (balance := await credits.balance(conn, user_id)) < price:
                raise credits.InsufficientCredits(balance, price)
            if not await conn.fetchval(
                "UPDATE avatars SET generation_count = generation_count + 1 "
                "WHERE id = $1 AND user_id = $2 AND status = 'completed' RETURNING 1",
                row["avatar_id"],
                user_id,
            ):
                raise GenerationRefused("avatar")
            prompt = from_caption(SCENE, _subject(row))
            inserted = await conn.fetchrow(
                "INSERT INTO generations (user_id, avatar_id, prompt, aspect_ratio, "
                "num_images, seed, reference_id, reference_strength) "
                f"VALUES ($1, $2, $3, $4, 1, $5, $6, $7) RETURNING {COLUMNS}",
                user_id, row["avatar_id"], prompt, aspect_of(row["width"], row["height"]),
                new_seed(), reference_id, strength,
            )  # fmt: skip
            generation = Generation.from_record(inserted)
            source = ReferenceSource(
                reference_id=str(reference_id),
                object_name=row["object_name"],
                width=row["width"],
                height=row["height"],
                strength=strength,
            )
            uow.publish(requested(generation, price, reference=source))
        return generation


def _subject(row: asyncpg.Record) -> Subject:
    """The prompt's subject from the avatar's columns (`Subject.of` without a model)."""
    if row["training_type"] == "style":
        return Subject("a person", None, look=row["trigger_word"])
    noun = {"male": "man", "female": "woman"}.get(row["gender"] or "", "person")
    return Subject(f"{row['trigger_word']} {noun}", row["trigger_word"])
