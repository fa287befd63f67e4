"""Training photos in: download → validate (thread) → quality gate (process) → object store →
`photos` row → counter.

Every update of an album is processed on its own, but the user gets one reply per burst:
outcomes collect per chat and are flushed once nothing arrived for `window` seconds, as one
reply to the first photo concerned that names each refused photo (and each kept one with a
warning) by its place in the burst, plus one edit of the avatar's live counter message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass, field
from uuid import UUID, uuid4

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from nats.errors import Error as NatsError
from nats.js.object_store import ObjectStore

from contracts import TrainingType
from services.bot.app.metrics import BotMetrics
from services.bot.app.models import Avatar
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
from services.bot.avatars import photo_rows as rows
from services.bot.avatars import photo_verdicts as verdicts
from services.bot.avatars.photo_checks import PhotoReport
from services.bot.avatars.photo_gate import Known, PhotoGate
from services.bot.avatars.photo_verdicts import ACCEPTED, Outcome
from services.bot.avatars.service import AvatarService

log = logging.getLogger(__name__)


@dataclass
class _Batch:
    user_id: int
    avatar_id: UUID
    t: Translator
    in_flight: int = 0
    seen: int = 0
    outcomes: list[Outcome] = field(default_factory=list)
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
        gate: PhotoGate | None = None,
    ):
        self.metrics = metrics or BotMetrics()
        self.avatars = avatars
        self.store = store
        self.sender = sender
        self.window = window
        self.min_side = min_side
        self.gate = gate or PhotoGate()
        # The checks against stored photos and the insert are one step per avatar, so two
        # near-copies in one album cannot both pass while neither is stored yet.
        # (weak: a lock lives while a photo of that avatar is being stored)
        self._avatar_locks: weakref.WeakValueDictionary[UUID, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._batches: dict[int, _Batch] = {}
        # Decoding is the one memory-heavy step (up to ~400 MB for a 64 MP PNG); an album
        # of such files must queue here rather than decode ten at once.
        self._decoding = asyncio.Semaphore(2)
        self._flushing: set[asyncio.Task[None]] = set()

    async def receive(
        self,
        bot: Bot,
        chat_id: int,
        user_id: int,
        avatar_id: UUID,
        t: Translator,
        up: Upload,
        message_id: int | None = None,
    ) -> None:
        batch = self._batch(chat_id, user_id, avatar_id, t)
        batch.in_flight += 1
        batch.seen += 1
        number = batch.seen
        warnings: list[str] = []
        try:
            code = await self._process(bot, user_id, avatar_id, up, warnings)
        finally:
            batch.in_flight -= 1
        self._record(chat_id, batch, Outcome(code, number, message_id, tuple(warnings)))

    def reject(
        self,
        chat_id: int,
        user_id: int,
        avatar_id: UUID,
        t: Translator,
        code: str,
        message_id: int | None = None,
    ) -> None:
        """A rejection decided before download (e.g. a PDF document) joins the same reply."""
        batch = self._batch(chat_id, user_id, avatar_id, t)
        batch.seen += 1
        self._record(chat_id, batch, Outcome(code, batch.seen, message_id))

    async def _process(
        self, bot: Bot, user_id: int, avatar_id: UUID, up: Upload, warnings: list[str]
    ) -> str:
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
        if await rows.has(self.avatars.pool, avatar_id, photo.sha256):
            return "duplicate"
        kind = await rows.training_type(self.avatars.pool, avatar_id)
        report = await self.gate.analyze(photo.data, faces=kind != TrainingType.STYLE)
        refused = [v for v in report.verdicts if v.hard]
        if refused:
            return refused[0].value
        lock = self._avatar_locks.get(avatar_id)
        if lock is None:
            lock = self._avatar_locks[avatar_id] = asyncio.Lock()
        async with lock:
            # a copy of it may have been analysed alongside and stored meanwhile
            if await rows.has(self.avatars.pool, avatar_id, photo.sha256):
                return "duplicate"
            against = self.gate.against(report, await self.known(avatar_id))
            if against:
                return against[0].value
            warnings.extend(v.value for v in report.verdicts)
            return await self._store(user_id, avatar_id, photo, up, report)

    async def known(self, avatar_id: UUID) -> list[Known]:
        return await rows.known(self.avatars.pool, avatar_id)

    async def _store(
        self, user_id: int, avatar_id: UUID, photo: ValidPhoto, up: Upload, report: PhotoReport
    ) -> str:
        """Object first, row second: a row never points at a missing object."""
        photo_id = uuid4()
        name = f"{avatar_id}/{photo_id}.jpg"
        await self.store.put(name, photo.data)
        row = rows.NewPhoto(photo_id, avatar_id, user_id, name, photo, up, report)
        outcome = await rows.insert(self.avatars, row)
        if outcome != ACCEPTED:
            with contextlib.suppress(NatsError):
                await self.store.delete(name)
        return outcome

    def _batch(self, chat_id: int, user_id: int, avatar_id: UUID, t: Translator) -> _Batch:
        batch = self._batches.get(chat_id)
        if batch is None or batch.avatar_id != avatar_id:
            batch = self._batches[chat_id] = _Batch(user_id, avatar_id, t)
        if batch.flush is not None:
            batch.flush.cancel()
            batch.flush = None
        return batch

    def _record(self, chat_id: int, batch: _Batch, outcome: Outcome) -> None:
        if outcome.code == ACCEPTED:
            self.metrics.photos_accepted.inc()
        else:
            self.metrics.photos_rejected.labels(outcome.code).inc()
        batch.outcomes.append(outcome)
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
        reply = verdicts.burst_reply(t, batch.outcomes)
        if reply is not None:
            text, reply_to = reply
            await verdicts.send_reply(self.sender, chat_id, text, reply_to)
        accepted = sum(1 for o in batch.outcomes if o.code == ACCEPTED)
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
        if avatar.photo_count >= self.avatars.min_photos:
            summary = self.gate.summary(await self.known(avatar.id))
            text = "\n\n".join([text, verdicts.summary_text(t, summary)])
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
        self.gate.close()
