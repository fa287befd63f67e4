"""Users and avatars in PostgreSQL: every query the handlers need, ownership checked in SQL.

Each method that takes `user_id` filters by it, so another user's avatar id behaves exactly
like an id that does not exist. State changes that must be announced (training requested,
cancel requested) write the event to the outbox in the same transaction.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from uuid import UUID

import asyncpg

from contracts import (
    FalPriority,
    TrainingCancelRequested,
    TrainingRequested,
    TrainingType,
    derived_event_id,
    utcnow,
)
from services.bot.app.metrics import BotMetrics
from services.bot.app.models import Avatar, AvatarStatus, Gender, TypeStats, User
from services.bot.app.pricing import Pricing
from services.bot.avatars import likeness_rows
from services.kit import credits, loras
from services.kit.crashpoints import crashpoint
from services.kit.db import UnitOfWork

log = logging.getLogger(__name__)
PRODUCER = "bot"
#: How long a user's row, once read, answers their next updates (see `upsert_user`).
USER_CACHE_SECONDS = 60.0
USER_CACHE_SIZE = 10_000
COLUMNS = (
    "id, user_id, name, gender, status, training_type, fal_priority, trigger_word, "
    "training_attempt, photo_count, progress_chat_id, progress_message_id, keep_photos"
)
STARTABLE = (AvatarStatus.READY,)
RETRYABLE = (AvatarStatus.ERROR, AvatarStatus.CANCELLED)


def new_trigger_word() -> str:
    """A token FLUX has never seen, so the LoRA binds the person to it alone."""
    return f"ohwx{secrets.token_hex(3)}"


def training_requested(avatar: Avatar, price: int, *, redo: bool = False) -> TrainingRequested:
    """The request for the avatar's current attempt, written in the transaction that moved
    it to training; its id is derived from the attempt, so a retried transaction queues the
    same event. `price` is charged by the trainer (0: a free redo, `training/check.py`)."""
    return TrainingRequested(
        event_id=derived_event_id("training_requested", avatar.id, avatar.training_attempt),
        occurred_at=utcnow(),
        avatar_id=str(avatar.id),
        user_id=avatar.user_id,
        attempt=avatar.training_attempt,
        training_type=avatar.training_type,
        priority=avatar.fal_priority,
        trigger_word=avatar.trigger_word,
        photo_count=avatar.photo_count,
        credits=price,
        redo=redo,
    )


class AvatarService:
    """The bot's writes to `users` and `avatars` (its own columns only)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        min_photos: int,
        max_photos: int,
        metrics: BotMetrics | None = None,
        pricing: Pricing | None = None,
    ):
        self.pool = pool
        self.pricing = pricing or Pricing.free_jobs()
        self.trial_credits = pricing.trial if pricing is not None else 0
        self.min_photos = min_photos
        self.max_photos = max_photos
        self.metrics = metrics or BotMetrics()
        self._users: OrderedDict[int, tuple[float, tuple[str | None, str, bool], User]] = (
            OrderedDict()
        )

    async def upsert_user(
        self, user_id: int, username: str | None, first_name: str, language: str, is_admin: bool
    ) -> User:
        """First contact creates the row with Telegram's language; later ones refresh names.

        Most updates come from a user whose row is current: for them this is one read, not a
        write (every write is a commit that waits for the WAL flush). So `last_seen_at` is
        refreshed at most every five minutes. And the row read is kept for
        `USER_CACHE_SECONDS`: this process is the only writer of `users` (the bot runs as one
        replica) and forgets a user on each of its writes (`forget`), so within that time the
        next update of the same user needs no query at all.
        """
        seen = (username, first_name, is_admin)
        cached = self._users.get(user_id)
        fresh = cached is not None and time.monotonic() - cached[0] < USER_CACHE_SECONDS
        if cached is not None and fresh and cached[1] == seen:
            self._users.move_to_end(user_id)
            return cached[2]
        user = await self._upsert_user(user_id, username, first_name, language, is_admin)
        self._users[user_id] = (time.monotonic(), seen, user)
        self._users.move_to_end(user_id)
        while len(self._users) > USER_CACHE_SIZE:
            self._users.popitem(last=False)
        return user

    def forget(self, user_id: int) -> None:
        """The user's row changed (or is gone): the next update reads it again."""
        self._users.pop(user_id, None)

    async def _upsert_user(
        self, user_id: int, username: str | None, first_name: str, language: str, is_admin: bool
    ) -> User:
        row = await self.pool.fetchrow(
            "SELECT id, language, first_name, is_active, is_admin, main_avatar_id"
            " FROM users WHERE id = $1 AND is_active AND is_admin = $4 AND first_name = $3"
            " AND username IS NOT DISTINCT FROM $2 AND last_seen_at > now() - interval '5 minutes'",
            user_id,
            username,
            first_name,
            is_admin,
        )
        if row is not None:
            return User.from_record(row)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "INSERT INTO users (id, username, first_name, language, is_admin, last_seen_at) "
                "VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (id) DO UPDATE SET "
                "username = EXCLUDED.username, first_name = EXCLUDED.first_name, "
                "is_admin = EXCLUDED.is_admin, is_active = true, last_seen_at = now() "
                "RETURNING id, language, first_name, is_active, is_admin, main_avatar_id, "
                "(xmax = 0) AS created",  # xmax is 0 on the row version an INSERT wrote
                user_id,
                username,
                first_name,
                language,
                is_admin,
            )
            if row["created"] and self.trial_credits:
                # Keyed by the Telegram id, so a user who deletes their data and comes back
                # does not get a second trial.
                await credits.post(
                    conn,
                    user_id=user_id,
                    kind=credits.Kind.TRIAL,
                    amount=self.trial_credits,
                    key=f"trial:{user_id}",
                )
        if row["created"]:
            self.metrics.users_started.inc()
            self.metrics.credits_granted.labels("trial").inc(self.trial_credits)
            log.info("new user", extra={"tg_user_id": user_id})
        return User.from_record(row)

    async def set_language(self, user_id: int, language: str) -> None:
        await self.pool.execute("UPDATE users SET language = $2 WHERE id = $1", user_id, language)
        self.forget(user_id)

    async def set_active(self, user_id: int, active: bool) -> None:
        await self.pool.execute("UPDATE users SET is_active = $2 WHERE id = $1", user_id, active)
        self.forget(user_id)

    async def user_language(self, user_id: int) -> str | None:
        value = await self.pool.fetchval("SELECT language FROM users WHERE id = $1", user_id)
        return str(value) if value else None

    async def create(
        self, user_id: int, name: str, gender: Gender | None, training_type: TrainingType
    ) -> Avatar:
        """A new avatar collecting photos; `gender` is None for a style (no person)."""
        row = await self.pool.fetchrow(
            "INSERT INTO avatars (user_id, name, gender, training_type, trigger_word, status) "
            f"VALUES ($1, $2, $3, $4, $5, 'uploading') RETURNING {COLUMNS}",
            user_id,
            name,
            gender.value if gender is not None else None,
            training_type.value,
            new_trigger_word(),
        )
        avatar = Avatar.from_record(row)
        self.metrics.avatars_created.labels(training_type.value).inc()
        log.info("avatar created", extra={"avatar_id": str(avatar.id), "tg_user_id": user_id})
        return avatar

    async def get(self, user_id: int, avatar_id: UUID) -> Avatar | None:
        row = await self.pool.fetchrow(
            f"SELECT {COLUMNS} FROM avatars WHERE id = $1 AND user_id = $2", avatar_id, user_id
        )
        return Avatar.from_record(row) if row else None

    async def list_for(self, user_id: int) -> list[Avatar]:
        rows = await self.pool.fetch(
            f"SELECT {COLUMNS} FROM avatars WHERE user_id = $1 ORDER BY created_at DESC LIMIT 50",
            user_id,
        )
        return [Avatar.from_record(r) for r in rows]

    async def set_live_message(self, avatar_id: UUID, chat_id: int, message_id: int) -> None:
        """The one message that shows this avatar's photo counter, then its training progress."""
        await self.pool.execute(
            "UPDATE avatars SET progress_chat_id = $2, progress_message_id = $3, "
            "updated_at = now() WHERE id = $1",
            avatar_id,
            chat_id,
            message_id,
        )

    async def start_training(
        self,
        user_id: int,
        avatar_id: UUID,
        chat_id: int,
        message_id: int,
        *,
        retry: bool = False,
        priority: FalPriority | None = None,
    ) -> Avatar | None:
        """Move to `training` with the chosen preset (`priority`; None: the avatar's own, as
        a retry keeps it) and request it, once: a second press finds no matching row.

        Raises `credits.InsufficientCredits` (changing nothing) when the balance cannot pay
        the preset's quote; the trainer charges the quote when it reserves the FAL job."""
        allowed = [s.value for s in (RETRYABLE if retry else STARTABLE)]
        async with UnitOfWork(self.pool, PRODUCER) as uow:
            chosen = priority or await uow.conn.fetchval(
                "SELECT fal_priority FROM avatars WHERE id = $1 AND user_id = $2",
                avatar_id,
                user_id,
            )
            if chosen is None:
                return None
            price = self.pricing.training_price(FalPriority(chosen))
            if price and (balance := await credits.balance(uow.conn, user_id)) < price:
                raise credits.InsufficientCredits(balance, price)
            row = await uow.conn.fetchrow(
                "UPDATE avatars SET status = 'training', training_attempt = training_attempt + 1, "
                "fal_priority = $7, progress_chat_id = $3, progress_message_id = $4, "
                "updated_at = now() "
                "WHERE id = $1 AND user_id = $2 AND status = ANY($5::avatar_status[]) "
                f"AND photo_count >= $6 RETURNING {COLUMNS}",
                avatar_id,
                user_id,
                chat_id,
                message_id,
                allowed,
                self.min_photos,
                FalPriority(chosen).value,
            )
            if row is None:
                return None
            avatar = Avatar.from_record(row)
            await likeness_rows.store_identity(uow.conn, avatar.id)
            uow.publish(training_requested(avatar, price))
        crashpoint("bot.after_training_request_commit")
        self.requested(avatar, "retry" if avatar.training_attempt > 1 else "first")
        return avatar

    def requested(self, avatar: Avatar, kind: str) -> None:
        """A training request committed: count it (`first`, `retry` or `redo`) and log it."""
        self.metrics.trainings_requested.labels(avatar.training_type.value, kind).inc()
        log.info(
            "training requested",
            extra={"avatar_id": str(avatar.id), "attempt": avatar.training_attempt},
        )

    async def request_cancel(self, user_id: int, avatar_id: UUID) -> Avatar | None:
        """Ask the trainer to stop; the status changes when `TrainingCancelled` comes back."""
        async with UnitOfWork(self.pool, PRODUCER) as uow:
            row = await uow.conn.fetchrow(
                f"SELECT {COLUMNS} FROM avatars WHERE id = $1 AND user_id = $2 "
                "AND status = 'training' FOR UPDATE",
                avatar_id,
                user_id,
            )
            if row is None:
                return None
            avatar = Avatar.from_record(row)
            uow.publish(
                TrainingCancelRequested(
                    event_id=derived_event_id(
                        "cancel_requested", avatar.id, avatar.training_attempt
                    ),
                    occurred_at=utcnow(),
                    avatar_id=str(avatar.id),
                    user_id=user_id,
                    attempt=avatar.training_attempt,
                )
            )
        return avatar

    async def rename(self, user_id: int, avatar_id: UUID, name: str) -> bool:
        result = await self.pool.execute(
            "UPDATE avatars SET name = $3, updated_at = now() WHERE id = $1 AND user_id = $2",
            avatar_id,
            user_id,
            name,
        )
        return str(result).endswith(" 1")

    async def delete(self, user_id: int, avatar_id: UUID) -> tuple[list[str], list[str]] | None:
        """Delete a non-training avatar; returns the object names to remove: its photos
        (`aisha_photos`) and our copy of its LoRA (`aisha_images`, `kit.loras`).
        (The user is forgotten: the avatar may have been their main one.)"""
        async with self.pool.acquire() as conn, conn.transaction():
            names = await conn.fetch(
                "SELECT p.object_name FROM photos p JOIN avatars a ON a.id = p.avatar_id "
                "WHERE a.id = $1 AND a.user_id = $2",
                avatar_id,
                user_id,
            )
            lora = await conn.fetchval(
                "DELETE FROM avatars WHERE id = $1 AND user_id = $2 AND status <> 'training' "
                "RETURNING coalesce(lora_object_key, '')",
                avatar_id,
                user_id,
            )
        self.forget(user_id)  # after the commit, like every write: no read re-caches the old row
        if lora is None:
            return None
        return [r["object_name"] for r in names], loras.object_names(lora)

    async def set_main(self, user_id: int, avatar_id: UUID) -> bool:
        result = await self.pool.execute(
            "UPDATE users SET main_avatar_id = $2 WHERE id = $1 AND EXISTS ("
            "SELECT 1 FROM avatars WHERE id = $2 AND user_id = $1 AND status = 'completed')",
            user_id,
            avatar_id,
        )
        self.forget(user_id)
        return str(result).endswith(" 1")

    async def likeness_stats(self) -> likeness_rows.LikenessStats:
        return await likeness_rows.stats(self.pool)

    async def stats(self) -> list[TypeStats]:
        """Per training type: how many, how many succeeded, and how long training took."""
        rows = await self.pool.fetch(
            "WITH d AS (SELECT training_type::text AS tt, status, extract(epoch FROM "
            "training_finished_at - coalesce(training_started_at, submitted_at)) AS secs "
            "FROM avatars) SELECT tt, count(*) AS total, "
            "count(*) FILTER (WHERE status = 'completed') AS completed, "
            "count(*) FILTER (WHERE status = 'error') AS failed, "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY secs) "
            "FILTER (WHERE status = 'completed') AS p50, "
            "percentile_cont(0.9) WITHIN GROUP (ORDER BY secs) "
            "FILTER (WHERE status = 'completed') AS p90 FROM d GROUP BY tt ORDER BY tt"
        )
        return [
            TypeStats(
                training_type=r["tt"],
                total=r["total"],
                completed=r["completed"],
                failed=r["failed"],
                p50_seconds=r["p50"],
                p90_seconds=r["p90"],
            )
            for r in rows
        ]
