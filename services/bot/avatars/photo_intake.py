"""Training photos in: download → validate (thread) → object store → `photos` row → counter.

Every update of an album is processed on its own, but the user gets one reply per burst:
outcomes collect per chat and are flushed once nothing arrived for `window` seconds, as one
rejection summary (if any) plus one edit of the avatar's live counter message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from uuid import UUID, uuid4

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from nats.errors import Error as NatsError
from nats.js.object_store import ObjectStore

from services.bot.app.metrics import BotMetrics
from services.bot.app.models import Avatar, AvatarStatus
from services.bot.app.photo_validation import (
    MAX_BYTES,
    PhotoRejected,
    Upload,
    ValidPhoto,
    validate_photo,
)
from services.bot.app.sender import Sender
from services.bot.app.texts import Translator
from services.bot.avatars import keyboards as kb
from services.bot.avatars.service import AvatarService

log = logging.getLogger(__name__)
ACCEPTED = "accepted"


@dataclass
class _Batch:
    user_id: int
    avatar_id: UUID
    t: Translator
    in_flight: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    flush: asyncio.TimerHandle | None = None


def counter_text(t: Translator, avatar: Avatar, min_photos: int, max_photos: int) -> str:
    """'7 of 10 — 3 more needed', or the invitation to start once there are enough."""
    if avatar.photo_count < min_photos:
        return t(
            "photos.counter",
            name=avatar.name,
            count=avatar.photo_count,
            min=min_photos,
            left=min_photos - avatar.photo_count,
        )
    return t("photos.counter_ready", name=avatar.name, count=avatar.photo_count, max=max_photos)


class PhotoIntake:
    """Accepts photos for avatars that are collecting them; one instance per process."""

    def __init__(
        self,
        avatars: AvatarService,
        store: ObjectStore,
        sender: Sender,
        *,
        window: float = 0.8,
        min_side: int = 512,
        metrics: BotMetrics | None = None,
    ):
        self.metrics = metrics or BotMetrics()
        self.avatars = avatars
        self.store = store
        self.sender = sender
        self.window = window
        self.min_side = min_side
        self._batches: dict[int, _Batch] = {}
        # Decoding is the one memory-heavy step (up to ~400 MB for a 64 MP PNG); an album
        # of such files must queue here rather than decode ten at once.
        self._decoding = asyncio.Semaphore(2)
        self._flushing: set[asyncio.Task[None]] = set()

    async def receive(
        self, bot: Bot, chat_id: int, user_id: int, avatar_id: UUID, t: Translator, up: Upload
    ) -> None:
        batch = self._batch(chat_id, user_id, avatar_id, t)
        batch.in_flight += 1
        try:
            outcome = await self._process(bot, user_id, avatar_id, up)
        finally:
            batch.in_flight -= 1
        self._record(chat_id, batch, outcome)

    def reject(self, chat_id: int, user_id: int, avatar_id: UUID, t: Translator, code: str) -> None:
        """A rejection decided before download (e.g. a PDF document) joins the same reply."""
        self._record(chat_id, self._batch(chat_id, user_id, avatar_id, t), code)

    async def _process(self, bot: Bot, user_id: int, avatar_id: UUID, up: Upload) -> str:
        if up.file_size is not None and up.file_size > MAX_BYTES:
            return "too_big_file"
        try:
            buffer = await bot.download(up.file_id)
        except (TelegramAPIError, TelegramNetworkError) as exc:
            log.warning("download of %s failed: %s", up.file_unique_id, exc)
            return "download_failed"
        assert buffer is not None
        try:
            async with self._decoding:
                photo = await asyncio.to_thread(
                    validate_photo, buffer.read(), min_side=self.min_side
                )
        except PhotoRejected as exc:
            return exc.code
        if await self._known(avatar_id, photo.sha256):
            return "duplicate"
        return await self._store(user_id, avatar_id, photo, up)

    async def _known(self, avatar_id: UUID, sha256: str) -> bool:
        return bool(
            await self.avatars.pool.fetchval(
                "SELECT 1 FROM photos WHERE avatar_id = $1 AND sha256 = $2", avatar_id, sha256
            )
        )

    async def _store(self, user_id: int, avatar_id: UUID, photo: ValidPhoto, up: Upload) -> str:
        """Object first, row second: a row never points at a missing object."""
        photo_id = uuid4()
        name = f"{avatar_id}/{photo_id}.jpg"
        await self.store.put(name, photo.data)
        outcome = await self._insert(user_id, avatar_id, photo_id, name, photo, up)
        if outcome != ACCEPTED:
            with contextlib.suppress(NatsError):
                await self.store.delete(name)
        return outcome

    async def _insert(
        self, user_id: int, avatar_id: UUID, photo_id: UUID, name: str, p: ValidPhoto, up: Upload
    ) -> str:
        async with self.avatars.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT status, photo_count FROM avatars WHERE id = $1 AND user_id = $2 FOR UPDATE",
                avatar_id,
                user_id,
            )
            if row is None or row["status"] not in (AvatarStatus.UPLOADING, AvatarStatus.READY):
                return "not_uploading"
            if row["photo_count"] >= self.avatars.max_photos:
                return "full"
            inserted = await conn.fetchval(
                "INSERT INTO photos (id, avatar_id, user_id, object_name, sha256, size_bytes, "
                "width, height, format, status, telegram_file_id, telegram_file_unique_id) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'accepted', $10, $11) "
                "ON CONFLICT (avatar_id, sha256) DO NOTHING RETURNING 1",
                photo_id, avatar_id, user_id, name, p.sha256, p.size_bytes,
                p.width, p.height, p.source_format, up.file_id, up.file_unique_id,
            )  # fmt: skip
            if inserted is None:
                return "duplicate"
            await conn.execute(
                "UPDATE avatars SET photo_count = photo_count + 1, status = CASE WHEN "
                "photo_count + 1 >= $2 THEN 'ready'::avatar_status ELSE 'uploading' END, "
                "updated_at = now() WHERE id = $1",
                avatar_id,
                self.avatars.min_photos,
            )
        return ACCEPTED

    def _batch(self, chat_id: int, user_id: int, avatar_id: UUID, t: Translator) -> _Batch:
        batch = self._batches.get(chat_id)
        if batch is None or batch.avatar_id != avatar_id:
            batch = self._batches[chat_id] = _Batch(user_id, avatar_id, t)
        if batch.flush is not None:
            batch.flush.cancel()
            batch.flush = None
        return batch

    def _record(self, chat_id: int, batch: _Batch, outcome: str) -> None:
        if outcome == ACCEPTED:
            self.metrics.photos_accepted.inc()
        else:
            self.metrics.photos_rejected.labels(outcome).inc()
        batch.outcomes[outcome] += 1
        if batch.in_flight == 0:
            loop = asyncio.get_running_loop()
            batch.flush = loop.call_later(self.window, self._start_flush, chat_id, batch)

    def _start_flush(self, chat_id: int, batch: _Batch) -> None:
        if self._batches.get(chat_id) is batch:
            del self._batches[chat_id]
        task = asyncio.create_task(self._flush(chat_id, batch))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush(self, chat_id: int, batch: _Batch) -> None:
        t = batch.t
        rejected = {code: n for code, n in batch.outcomes.items() if code != ACCEPTED}
        if rejected:
            lines = [t(f"photos.reject.{code}", count=n) for code, n in rejected.items()]
            summary = "\n".join([t("photos.rejected_header"), *lines])
            await self.sender.send(chat_id, summary, silent=True)
        accepted = batch.outcomes[ACCEPTED]
        avatar = await self.avatars.get(batch.user_id, batch.avatar_id)
        if avatar is None or not accepted:
            return
        minimum = self.avatars.min_photos
        crossed = avatar.photo_count >= minimum > avatar.photo_count - accepted
        await self.show_counter(chat_id, avatar, t, move=crossed)

    async def show_counter(
        self, chat_id: int, avatar: Avatar, t: Translator, *, move: bool
    ) -> None:
        """Edit the live counter; `move` (or a counter scrolled out of sight) re-posts it
        below the photos the user just sent. Counters are chatter: sent silently."""
        text = counter_text(t, avatar, self.avatars.min_photos, self.avatars.max_photos)
        markup = kb.photo_counter(t, avatar.id, avatar.photo_count >= self.avatars.min_photos)
        old = avatar.progress_message_id
        if old is not None and not move and not self.sender.positions.buried(chat_id, old):
            await self.sender.edit(chat_id, old, text, markup)
            return
        sent = await self.sender.send(chat_id, text, markup, silent=True)
        if sent is None:
            return
        await self.avatars.set_live_message(avatar.id, chat_id, sent.message_id)
        if old is not None:
            await self.sender.delete(chat_id, old)

    async def close(self) -> None:
        for batch in self._batches.values():
            if batch.flush is not None:
                batch.flush.cancel()
        if self._flushing:
            await asyncio.wait(self._flushing, timeout=5.0)
