"""Generations in PostgreSQL: create (with the per-user limit), repeat, and event transitions.

Every user-facing query filters by the caller's id, so another user's generation id behaves
like one that does not exist. A new generation and its `GenerationRequested` are written in
one transaction (outbox); status moves only forward (pending → submitted → completed | failed)
and each consumed event is claimed in `processed_events` in the transaction that applies it.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

import asyncpg

from contracts import (
    AnimateSource,
    GenerationRequested,
    ReferenceSource,
    UpscaleSource,
    derived_event_id,
    utcnow,
)
from contracts.jetstream import BOT_GENERATION
from services.bot.app.sender import Markup, Sender
from services.bot.generation.prompts import vary
from services.kit import credits
from services.kit.db import UnitOfWork

PRODUCER = "bot"
CONSUMER = BOT_GENERATION.durable
SEED_LIMIT = 2**31
#: A generation older than this no longer counts against the limit even if no event came
#: (the backend lost it): a stuck job must not lock the user out for good.
ACTIVE_WINDOW = "30 minutes"
COLUMNS = (
    "id, user_id, avatar_id, prompt, user_prompt, style_id, aspect_ratio, num_images, seed, "
    "lora_scale, status, parent_id, progress_chat_id, progress_message_id, created_at, "
    "pack_order_id, source_image_id, upscale_factor, reference_id, reference_strength, "
    "animation_seconds, training_check"
)


class GenerationStatus(StrEnum):
    PENDING = "pending"
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, kw_only=True)
class Generation:
    id: UUID
    user_id: int
    avatar_id: UUID | None
    prompt: str
    user_prompt: str | None
    style_id: str | None
    aspect_ratio: str
    num_images: int
    seed: int
    lora_scale: float | None
    status: GenerationStatus
    parent_id: UUID | None
    progress_chat_id: int | None
    progress_message_id: int | None
    created_at: datetime
    #: The pack this generation was ordered in (one charge for the pack), else None.
    pack_order_id: UUID | None = None
    #: An upscale (0010): the picture it enlarges and the factor; None for a generation.
    source_image_id: UUID | None = None
    upscale_factor: int | None = None
    #: A re-drawn reference photo (0011): the photo and FAL's strength; None otherwise.
    reference_id: UUID | None = None
    reference_strength: float | None = None
    #: An animation (0012): the clip's seconds; None for a picture or an upscale.
    animation_seconds: int | None = None
    #: The test portraits of a training check (0014): free, scored, not in the gallery.
    training_check: bool = False

    @property
    def kind(self) -> str:
        """`check`, `upscale`, `reference`, `animation` or `image`: which feature shows this
        job's progress and outcome."""
        if self.training_check:
            return "check"
        if self.animation_seconds is not None:
            return "animation"
        if self.upscale_factor is not None:
            return "upscale"
        return "reference" if self.reference_strength is not None else "image"

    @classmethod
    def from_record(cls, r: Any) -> Generation:
        return cls(
            id=r["id"],
            user_id=r["user_id"],
            avatar_id=r["avatar_id"],
            prompt=r["prompt"],
            user_prompt=r["user_prompt"],
            style_id=r["style_id"],
            aspect_ratio=r["aspect_ratio"],
            num_images=r["num_images"],
            seed=r["seed"],
            lora_scale=r["lora_scale"],
            status=GenerationStatus(r["status"]),
            parent_id=r["parent_id"],
            progress_chat_id=r["progress_chat_id"],
            progress_message_id=r["progress_message_id"],
            created_at=r["created_at"],
            pack_order_id=r["pack_order_id"],
            source_image_id=r["source_image_id"],
            upscale_factor=r["upscale_factor"],
            reference_id=r["reference_id"],
            reference_strength=r["reference_strength"],
            animation_seconds=r["animation_seconds"],
            training_check=r["training_check"],
        )


def requested(
    generation: Generation,
    price: int,
    *,
    with_avatar: bool = True,
    upscale: UpscaleSource | None = None,
    reference: ReferenceSource | None = None,
    animate: AnimateSource | None = None,
) -> GenerationRequested:
    """The trainer's request for a generation row just inserted, in the same transaction.

    Its event id is derived from the row, so a retried transaction queues the same event;
    `price` is what the trainer charges when it reserves the job (0: charged already, as a
    pack is). An upscale sends no avatar (no LoRA is applied) and names its source picture.
    """
    return GenerationRequested(
        event_id=derived_event_id("generation_requested", generation.id),
        occurred_at=utcnow(),
        generation_id=str(generation.id),
        user_id=generation.user_id,
        avatar_id=str(generation.avatar_id) if with_avatar and generation.avatar_id else None,
        prompt=generation.prompt,
        aspect_ratio=generation.aspect_ratio,
        num_images=generation.num_images,
        seed=generation.seed,
        credits=price,
        upscale=upscale,
        reference=reference,
        animate=animate,
    )


@dataclass(frozen=True, kw_only=True)
class GenerationSpec:
    """Everything recorded for a new generation (the final prompt included)."""

    avatar_id: UUID | None
    prompt: str
    user_prompt: str | None
    style_id: str | None
    aspect_ratio: str
    num_images: int
    seed: int
    lora_scale: float | None
    parent_id: UUID | None = None


class GenerationRefused(Exception):
    """Not created: `code` is "limit" (too many running) or "avatar" (not ready/not yours)."""

    def __init__(self, code: Literal["limit", "avatar"]):
        super().__init__(code)
        self.code = code


@dataclass(frozen=True, slots=True)
class Transition:
    """A generation that moved, the owner's language, and the refund that went with it."""

    generation: Generation
    language: str
    refund: credits.Posting | None = None


async def announce(
    pool: asyncpg.Pool,
    sender: Sender,
    generation_id: UUID,
    chat_id: int,
    text: str,
    markup: Markup = None,
) -> None:
    """Send the message that shows a running job's progress and record it on the row. The
    button that started the job and the job's own first event both try; whichever is
    recorded first lives and the other is deleted (as is one sent after the job ended), so
    exactly one progress message exists and the delivery deletes it."""
    sent = await sender.send(chat_id, text, markup)
    if sent is None:
        return
    recorded = await pool.fetchval(
        "UPDATE generations SET progress_chat_id = $2, progress_message_id = $3 "
        "WHERE id = $1 AND progress_message_id IS NULL AND status IN ('pending', 'submitted')"
        " RETURNING 1",
        generation_id,
        chat_id,
        sent.message_id,
    )
    if recorded is None:
        await sender.delete(chat_id, sent.message_id)


def new_seed() -> int:
    return secrets.randbelow(SEED_LIMIT)


class GenerationService:
    """The bot's writes to `generations` (its own columns only)."""

    def __init__(self, pool: asyncpg.Pool, *, max_active: int = 2, credits_per_image: int = 0):
        self.pool = pool
        self.max_active = max_active
        self.credits_per_image = credits_per_image

    async def active_count(self, user_id: int) -> int:
        """A cheap early check for buttons; `create` enforces the limit under a lock."""
        async with self.pool.acquire() as conn:
            return await self._active(conn, user_id)

    @staticmethod
    async def _active(conn: asyncpg.Connection, user_id: int) -> int:
        # A pack's pictures were paid for as one order and do not lock the wizard.
        value = await conn.fetchval(
            "SELECT count(*) FROM generations WHERE user_id = $1 AND status IN "
            f"('pending', 'submitted') AND created_at > now() - interval '{ACTIVE_WINDOW}' "
            "AND pack_order_id IS NULL",
            user_id,
        )
        return int(value or 0)

    async def create(
        self, user_id: int, spec: GenerationSpec, chat_id: int, message_id: int
    ) -> Generation:
        """Insert and request at once; the user's row lock makes the limit exact even when
        two presses race. The balance check is for the user's sake (an answer now, not a
        failure later); the trainer's charge at submission is what enforces it."""
        price = self.credits_per_image * spec.num_images
        async with UnitOfWork(self.pool, PRODUCER) as uow:
            conn = uow.conn
            await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
            if await self._active(conn, user_id) >= self.max_active:
                raise GenerationRefused("limit")
            if price and (balance := await credits.balance(conn, user_id)) < price:
                raise credits.InsufficientCredits(balance, price)
            if spec.avatar_id is not None and not await conn.fetchval(
                "UPDATE avatars SET generation_count = generation_count + 1 "
                "WHERE id = $1 AND user_id = $2 AND status = 'completed' RETURNING 1",
                spec.avatar_id,
                user_id,
            ):
                raise GenerationRefused("avatar")
            row = await conn.fetchrow(
                "INSERT INTO generations (user_id, avatar_id, prompt, user_prompt, style_id, "
                "aspect_ratio, num_images, seed, lora_scale, parent_id, progress_chat_id, "
                "progress_message_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) "
                f"RETURNING {COLUMNS}",
                user_id, spec.avatar_id, spec.prompt, spec.user_prompt, spec.style_id,
                spec.aspect_ratio, spec.num_images, spec.seed, spec.lora_scale, spec.parent_id,
                chat_id, message_id,
            )  # fmt: skip
            generation = Generation.from_record(row)
            uow.publish(requested(generation, price))
        return generation

    async def get(self, user_id: int, generation_id: UUID) -> Generation | None:
        row = await self.pool.fetchrow(
            f"SELECT {COLUMNS} FROM generations WHERE id = $1 AND user_id = $2",
            generation_id,
            user_id,
        )
        return Generation.from_record(row) if row else None

    async def follow_up(
        self, user_id: int, parent_id: UUID, mode: Literal["again", "more"]
    ) -> GenerationSpec | None:
        """Follow-ups. Again: same settings, a fresh seed. More like this: the next seed of the same
        family (seed + n) with a small prompt variation, n counting earlier follow-ups."""
        parent = await self.get(user_id, parent_id)
        if parent is None:
            return None
        prompt, seed = parent.prompt, new_seed()
        if mode == "more":
            step = 1 + await self.pool.fetchval(
                "SELECT count(*) FROM generations WHERE parent_id = $1", parent.id
            )
            prompt, seed = vary(parent.prompt, step), (parent.seed + step) % SEED_LIMIT
        return GenerationSpec(
            avatar_id=parent.avatar_id,
            prompt=prompt,
            user_prompt=parent.user_prompt,
            style_id=parent.style_id,
            aspect_ratio=parent.aspect_ratio,
            num_images=parent.num_images,
            seed=seed,
            lora_scale=parent.lora_scale,
            parent_id=parent.id,
        )

    # -- event side (BOT_GENERATION consumer) ---------------------------------------------
    async def transition(
        self,
        event_id: str,
        generation_id: UUID,
        to: GenerationStatus,
        refund_reason: str | None = None,
        tell: Callable[[Transition], Awaitable[None]] | None = None,
    ) -> Transition | None:
        """Claim the event and move forward; None for a duplicate, an unknown generation or
        a step back (a late "submitted" after "failed"). With `refund_reason`, the credits
        charged for it go back in the same transaction. `tell` shows the user the outcome
        *before* the commit: a process that dies in between rolls back and the redelivered
        event tells them again, so an end is never told zero times."""
        allowed = ["pending"] if to is GenerationStatus.SUBMITTED else ["pending", "submitted"]
        refund: credits.Posting | None = None
        async with UnitOfWork(self.pool, PRODUCER) as uow:
            if not await uow.claim(CONSUMER, event_id):
                return None
            row = await uow.conn.fetchrow(
                "UPDATE generations g SET status = $2 WHERE id = $1 AND status = "
                f"ANY($3::generation_status[]) RETURNING {COLUMNS}, "
                "(SELECT language FROM users u WHERE u.id = g.user_id) AS language",
                generation_id,
                to.value,
                allowed,
            )
            if row is None:
                return None
            if refund_reason is not None:
                refund = await self._refund(uow.conn, generation_id, refund_reason)
            moved = Transition(Generation.from_record(row), row["language"], refund)
            if tell is not None:
                await tell(moved)
        return moved

    @staticmethod
    async def _refund(
        conn: asyncpg.Connection, generation_id: UUID, reason: str, pictures: int | None = None
    ) -> credits.Posting | None:
        """A single generation gets its whole charge back; a pack's generation its share of
        the pack's charge: `pictures` of it (None: all it was to make)."""
        row = await conn.fetchrow(
            "SELECT pack_order_id, num_images FROM generations WHERE id = $1", generation_id
        )
        if row is None or row["pack_order_id"] is None:
            key = credits.generation_charge_key(str(generation_id))
            return await credits.refund(conn, charge_key=key, reason=reason)
        order = str(row["pack_order_id"])
        per_picture = await pack_price_per_picture(conn, row["pack_order_id"])
        count = row["num_images"] if pictures is None else pictures
        return await credits.refund_part(
            conn,
            charge_key=credits.pack_charge_key(order),
            part=str(generation_id),
            amount=per_picture * count,
            reason=reason,
        )

    async def charged(self, generation_id: UUID) -> int:
        """Credits this generation cost (0 if free or not charged yet)."""
        return await credits.charged(self.pool, credits.generation_charge_key(str(generation_id)))

    async def pack_refund_due(self, generation: Generation, lost: int) -> int:
        """Credits due back for `lost` pictures (withheld or missing) of a pack's generation."""
        if generation.pack_order_id is None or lost <= 0:
            return 0
        async with self.pool.acquire() as conn:
            price = await pack_price_per_picture(conn, generation.pack_order_id)
        return price * min(lost, generation.num_images)

    async def pending_delivery(self, generation_id: UUID) -> tuple[Generation, str] | None:
        """The generation if its results were not delivered yet (else None: a duplicate)."""
        row = await self.pool.fetchrow(
            f"SELECT {', '.join('g.' + c for c in COLUMNS.split(', '))}, u.language "
            "FROM generations g JOIN users u ON u.id = g.user_id WHERE g.id = $1",
            generation_id,
        )
        if row is None or row["status"] not in ("pending", "submitted"):
            return None
        return Generation.from_record(row), row["language"]

    async def complete(
        self,
        event_id: str,
        generation_id: UUID,
        file_ids: dict[UUID, str],
        refund_reason: str | None = None,
        pictures: int | None = None,
    ) -> bool:
        """After the album went out: mark it delivered and keep each photo's `file_id` for
        cheap re-sends, refunding it in the same transaction when `refund_reason` is given
        (no picture could be shown). False if another delivery got here first."""
        async with UnitOfWork(self.pool, PRODUCER) as uow:
            if not await uow.claim(CONSUMER, event_id):
                return False
            done = await uow.conn.fetchval(
                "UPDATE generations SET status = 'completed' WHERE id = $1 "
                "AND status IN ('pending', 'submitted') RETURNING 1",
                generation_id,
            )
            if done is None:
                return False
            await uow.conn.executemany(
                "UPDATE generated_images SET telegram_file_id = $2 "
                "WHERE id = $1 AND generation_id = $3",
                [(image_id, file_id, generation_id) for image_id, file_id in file_ids.items()],
            )
            if refund_reason is not None:
                await self._refund(uow.conn, generation_id, refund_reason, pictures)
        return True


async def pack_price_per_picture(conn: asyncpg.Connection, order_id: UUID) -> int:
    """What one picture of a pack cost: the pack's charge over the pictures it ordered
    (the price when it was pressed, whatever the price is now)."""
    charge = await credits.entry(conn, credits.pack_charge_key(str(order_id)))
    pictures = await conn.fetchval(
        "SELECT coalesce(sum(num_images), 0) FROM generations WHERE pack_order_id = $1", order_id
    )
    if charge is None or charge.amount >= 0 or not pictures:
        return 0
    return -charge.amount // int(pictures)
