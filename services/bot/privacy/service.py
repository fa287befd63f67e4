"""Erasing a user (`/delete_me`) and the per-avatar "keep my photos" choice.

Erasure is two steps on purpose. Every row goes in ONE transaction (share links, generated
images, generations, photos, avatars, the user, and the published outbox copies of events
that name the user — they carry prompts and captions), which also queues a cancel for each
training still running, so the trainer stops paying for a model nobody will see. Only after
the commit are the stored files removed: training photos, generated images, our copy of
each trained LoRA and its config (`kit.loras`; FAL's own copies expire at the lifetime we
gave them), the reference photos re-drawn with an avatar (`reference_photos` rows, their
files beside the training photos) and the pictures of photo to prompt. The latter have no
row; one is found through the user's `DescribeRequested` still in the outbox (published
rows are kept 24 h, and one older than an hour is deleted by the retention sweep anyway).
A crash between the two steps leaves nothing but orphan objects that no row points to;
`retention.RetentionSweeper` removes those. Running it again is harmless: there is nothing
left to find, and missing objects are skipped.

Kept on purpose: the credit ledger (`credit_entries`), Stars payments (`star_payments`) and
promo redemptions — financial records holding a Telegram id and amounts only.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
import msgspec
from nats.errors import Error as NatsError
from nats.js.object_store import ObjectStore

from contracts import DescribeRequested, TrainingCancelRequested, derived_event_id, utcnow
from contracts.jetstream import OBJ_IMAGES, OBJ_PHOTOS
from services.bot.app.config import BotConfig
from services.bot.avatars.service import PRODUCER
from services.bot.generation.describer import REFERENCE_PREFIX
from services.bot.privacy.retention import RetentionSweeper
from services.kit import loras
from services.kit.db import UnitOfWork
from services.kit.runtime import Runtime

log = logging.getLogger(__name__)

# Rows of the user's generations, by ownership or by parentage (either suffices).
_IMAGES = (
    "FROM generated_images WHERE user_id = $1 OR generation_id IN "
    "(SELECT id FROM generations WHERE user_id = $1)"
)
_PHOTOS = (
    "FROM photos WHERE user_id = $1 OR avatar_id IN (SELECT id FROM avatars WHERE user_id = $1)"
)
# Outbox rows whose event names the user: every event payload is compact JSON (msgspec) with
# a top-level `"user_id":<id>`, followed by `,` or `}`. A byte search, not a JSON parse: a
# payload PostgreSQL's jsonb would refuse (a \u0000 in some error detail) cannot fail it.
_NAMES_USER = "(position($1::bytea in payload) > 0 OR position($2::bytea in payload) > 0)"


@dataclass(frozen=True, kw_only=True)
class DataSummary:
    """What `/delete_me` will remove, shown before the user confirms."""

    avatars: int
    photos: int
    images: int


@dataclass(frozen=True, kw_only=True)
class Erasure:
    """What the transaction removed, and the stored files still to delete."""

    avatars: list[UUID] = field(default_factory=list)
    photo_objects: list[str] = field(default_factory=list)
    image_objects: list[str] = field(default_factory=list)
    reference_objects: list[str] = field(default_factory=list)
    lora_objects: list[str] = field(default_factory=list)
    cancelled: int = 0


class PrivacyService:
    """The bot's side of a user's right to be forgotten."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        photo_store: ObjectStore,
        image_store: ObjectStore,
        forget_user: Callable[[int], None] | None = None,
    ):
        self.pool = pool
        self.photo_store = photo_store
        self.image_store = image_store
        self.forget_user = forget_user  # AvatarService.forget: its cached row is gone

    async def summary(self, user_id: int) -> DataSummary:
        row = await self.pool.fetchrow(
            "SELECT (SELECT count(*) FROM avatars WHERE user_id = $1) AS avatars, "
            f"(SELECT count(*) {_PHOTOS}) AS photos, (SELECT count(*) {_IMAGES}) AS images",
            user_id,
        )
        return DataSummary(avatars=row["avatars"], photos=row["photos"], images=row["images"])

    async def erase(self, user_id: int) -> Erasure:
        """Rows first (one transaction), then files; idempotent."""
        erasure = await self.erase_rows(user_id)
        if self.forget_user is not None:
            self.forget_user(user_id)
        await self.remove_objects(erasure)
        log.info(
            "user data erased",
            extra={"avatars": len(erasure.avatars), "cancelled": erasure.cancelled},
        )
        return erasure

    async def erase_rows(self, user_id: int) -> Erasure:
        """Every row of the user in one transaction; returns the object names to delete."""
        async with UnitOfWork(self.pool, PRODUCER) as uow:
            conn = uow.conn
            # Locking the avatars first makes a concurrent photo upload wait, then find its
            # avatar gone (and drop its own object), instead of slipping a row in.
            avatars = await conn.fetch(
                "SELECT id, status, training_attempt, lora_object_key FROM avatars "
                "WHERE user_id = $1 ORDER BY id FOR UPDATE",
                user_id,
            )
            photos = await conn.fetch(f"SELECT object_name {_PHOTOS}", user_id)
            images = await conn.fetch(f"SELECT object_name {_IMAGES}", user_id)
            references = await _references(conn, user_id)
            reference_photos = await conn.fetch(
                "SELECT object_name FROM reference_photos WHERE user_id = $1", user_id
            )
            await conn.execute(
                f"DELETE FROM share_links WHERE user_id = $1 OR image_id IN (SELECT id {_IMAGES})",
                user_id,
            )
            await conn.execute(f"DELETE {_IMAGES}", user_id)
            await conn.execute("DELETE FROM generations WHERE user_id = $1", user_id)
            await conn.execute("DELETE FROM reference_photos WHERE user_id = $1", user_id)
            await conn.execute(f"DELETE {_PHOTOS}", user_id)
            await conn.execute("DELETE FROM avatars WHERE user_id = $1", user_id)
            await conn.execute("DELETE FROM users WHERE id = $1", user_id)
            # Published copies only: unpublished rows still have to reach their consumers
            # (the cancels queued below among them).
            await conn.execute(
                f"DELETE FROM outbox WHERE published_at IS NOT NULL AND {_NAMES_USER}",
                *_markers(user_id),
            )
            training = [a for a in avatars if a["status"] == "training"]
            for avatar in training:
                uow.publish(
                    TrainingCancelRequested(
                        # the same id a Cancel press would use: JetStream keeps one of them
                        event_id=derived_event_id(
                            "cancel_requested", avatar["id"], avatar["training_attempt"]
                        ),
                        occurred_at=utcnow(),
                        avatar_id=str(avatar["id"]),
                        user_id=user_id,
                        attempt=avatar["training_attempt"],
                    )
                )
        return Erasure(
            avatars=[a["id"] for a in avatars],
            photo_objects=[r["object_name"] for r in (*photos, *reference_photos)],
            image_objects=[r["object_name"] for r in images],
            reference_objects=references,
            lora_objects=[n for a in avatars for n in loras.object_names(a["lora_object_key"])],
            cancelled=len(training),
        )

    async def remove_objects(self, erasure: Erasure) -> int:
        """Delete the files; ones already gone are skipped."""
        removed = 0
        for store, names in (
            (self.photo_store, erasure.photo_objects),
            (self.image_store, erasure.image_objects),
            (self.image_store, erasure.reference_objects),
            (self.image_store, erasure.lora_objects),
        ):
            for name in names:
                with contextlib.suppress(NatsError):
                    await store.delete(name)
                    removed += 1
        return removed

    async def set_keep_photos(self, user_id: int, avatar_id: UUID, keep: bool) -> int | None:
        """Record the choice; returns how many training photos are still stored (None: not
        this user's avatar)."""
        stored: int | None = await self.pool.fetchval(
            "UPDATE avatars SET keep_photos = $3, updated_at = now() "
            "WHERE id = $1 AND user_id = $2 "
            "RETURNING (SELECT count(*) FROM photos WHERE avatar_id = $1)",
            avatar_id,
            user_id,
            keep,
        )
        return stored


def _markers(user_id: int) -> tuple[bytes, bytes]:
    return f'"user_id":{user_id},'.encode(), f'"user_id":{user_id}}}'.encode()


async def _references(conn: asyncpg.Connection, user_id: int) -> list[str]:
    """The user's photo-to-prompt reference pictures, from their `DescribeRequested` rows
    in the outbox (published or not)."""
    rows = await conn.fetch(
        f"SELECT payload FROM outbox WHERE subject = $3 AND {_NAMES_USER}",
        *_markers(user_id),
        DescribeRequested.subject,
    )
    names = []
    for row in rows:
        try:
            request = msgspec.json.decode(row["payload"], type=DescribeRequested)
        except msgspec.DecodeError:  # ValidationError included
            continue
        if request.user_id == user_id and request.object_name.startswith(REFERENCE_PREFIX):
            names.append(request.object_name)
    return names


async def wire_privacy(
    rt: Runtime, config: BotConfig, forget_user: Callable[[int], None] | None = None
) -> PrivacyService:
    """The erasure service for the dispatcher, and the retention sweeper as a runtime task."""
    photos = await rt.js.object_store(OBJ_PHOTOS.name)
    images = await rt.js.object_store(OBJ_IMAGES.name)
    sweeper = RetentionSweeper(
        rt.pool,
        photos,
        images,
        retention_hours=config.photo_retention_hours,
        interval=config.retention_interval_seconds,
    )
    rt.spawn("retention", sweeper.run(rt.stop))
    return PrivacyService(rt.pool, photos, images, forget_user)
