"""Generation events (`BOT_GENERATION`) → the generation's status, its progress message,
the delivered pictures, and the photo-to-prompt answer.

Status moves forward only and each event is claimed in `processed_events` with the change.
Delivery is at-least-once on purpose: the pictures are sent first and the generation is
marked completed (with the photos' file_ids) after, so a crash in between re-sends the album
on redelivery rather than losing it; a duplicate event finds it completed and does nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from uuid import UUID
from weakref import WeakValueDictionary

from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import BaseStorage, StorageKey

from contracts import (
    Event,
    FailureReason,
    GeneratedImage,
    GenerationCompleted,
    GenerationFailed,
    GenerationSubmitted,
    PromptDescribed,
)
from services.bot.app.metrics import BotMetrics
from services.bot.app.screens import View
from services.bot.app.sender import Sender
from services.bot.app.texts import Texts, Translator
from services.bot.avatars.service import AvatarService
from services.bot.credits.ledger_texts import refund_note
from services.bot.generation import views
from services.bot.generation.delivery import ResultDelivery
from services.bot.generation.describer import Describer
from services.bot.generation.draft import Generate, load_draft, save_draft
from services.bot.generation.prompts import Subject, from_caption
from services.bot.generation.service import (
    Generation,
    GenerationService,
    GenerationStatus,
    Transition,
    announce,
)
from services.kit.consumer import Delivery, Handler, Reject
from services.kit.crashpoints import crashpoint

log = logging.getLogger(__name__)


class OtherKind(Protocol):
    """How a job that is not a picture generation (an upscale, a training check's test
    portraits) looks while it runs and ends; supplied by its feature at composition
    (`app/generation_wiring.py`). `failed` runs before the failure commits."""

    def running(self, t: Translator, generation: Generation) -> str: ...

    async def failed(
        self, t: Translator, generation: Generation, reason: FailureReason
    ) -> View: ...

    async def deliver(
        self,
        generation: Generation,
        results: tuple[GeneratedImage, ...],
        t: Translator,
        refunded: int = 0,
    ) -> dict[UUID, str]: ...


def _uuid(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise Reject(f"bad id {value!r}") from None


class GenerationEvents:
    """Handlers for the `BOT_GENERATION` consumer."""

    def __init__(
        self,
        generations: GenerationService,
        avatars: AvatarService,
        results: ResultDelivery,
        describer: Describer,
        sender: Sender,
        texts: Texts,
        storage: BaseStorage,
        bot_id: int,
        metrics: BotMetrics | None = None,
        kinds: dict[str, OtherKind] | None = None,
    ):
        self.generations = generations
        self.avatars = avatars
        self.results = results
        self.describer = describer
        self.sender = sender
        self.texts = texts
        self.storage = storage
        self.bot_id = bot_id
        self.metrics = metrics or BotMetrics()
        #: By `Generation.kind`: the faces of other jobs on this pipeline (`upscale`).
        self.kinds = kinds or {}
        self._locks: WeakValueDictionary[UUID, asyncio.Lock] = WeakValueDictionary()

    def handlers(self) -> dict[type[Event], Handler]:
        return {
            GenerationSubmitted: self.on_submitted,
            GenerationCompleted: self.on_completed,
            GenerationFailed: self.on_failed,
            PromptDescribed: self.on_described,
        }

    async def on_submitted(self, e: GenerationSubmitted, _: Delivery) -> None:
        await self._step(e.event_id, e.generation_id, GenerationStatus.SUBMITTED, self._running)

    async def on_failed(self, e: GenerationFailed, _: Delivery) -> None:
        """Failed for a reason that is not the user's: the credits go back with the status
        change, and the message (shown before that commits) says so."""
        reason = e.reason.value if e.reason.refundable else None

        async def tell(moved: Transition) -> None:
            t = Translator(self.texts, moved.language)
            other = self.kinds.get(moved.generation.kind)
            if other is not None:
                view = await other.failed(t, moved.generation, e.reason)
            else:
                view = views.failed(t, moved.generation, e.reason)
            text = view.text
            if moved.refund is not None:
                text += "\n\n" + refund_note(t, moved.refund.entry)
            await self._tell_end(moved.generation, text, view.markup)  # before the commit

        async with self._lock(_uuid(e.generation_id)):
            moved = await self.generations.transition(
                e.event_id, _uuid(e.generation_id), GenerationStatus.FAILED, reason, tell
            )
        if moved is not None:
            await self._close(moved.generation)
        if moved is not None and moved.refund is not None and not moved.refund.duplicate:
            kind = "generation" if moved.generation.kind == "image" else moved.generation.kind
            self.metrics.credit_refunds.labels(kind, e.reason.value).inc()

    async def on_completed(self, e: GenerationCompleted, _: Delivery) -> None:
        generation_id = _uuid(e.generation_id)
        async with self._lock(generation_id):
            pending = await self.generations.pending_delivery(generation_id)
            if pending is None:
                log.info("generation %s already delivered (or unknown)", generation_id)
                return
            generation, lang = pending
            refund, lost = await self._refund_due(generation, e)
            other = self.kinds.get(generation.kind)
            file_ids = await (other or self.results).deliver(
                generation, e.images, Translator(self.texts, lang), refunded=refund
            )
            await self._close(generation)
            crashpoint("bot.after_pictures_sent")
            reason = "nsfw" if refund else None
            done = await self.generations.complete(
                e.event_id, generation_id, file_ids, reason, lost
            )
            if done and reason is not None:
                kind = "pack" if generation.pack_order_id else "generation"
                self.metrics.credit_refunds.labels(kind, reason).inc()

    async def _refund_due(
        self, generation: Generation, e: GenerationCompleted
    ) -> tuple[int, int | None]:
        """Credits back for a delivery, and for a pack's picture the count they pay back.
        Policy: a single generation whose pictures were all withheld is refunded whole (some
        withheld: the rest was delivered); a pack is priced per picture, so each picture
        withheld or not made is refunded."""
        if generation.pack_order_id is not None:
            withheld = sum(1 for image in e.images if image.nsfw)
            lost = withheld + max(0, generation.num_images - len(e.images))
            return await self.generations.pack_refund_due(generation, lost), lost
        nsfw_only = bool(e.images) and all(image.nsfw for image in e.images)
        return (await self.generations.charged(generation.id) if nsfw_only else 0), None

    async def on_described(self, e: PromptDescribed, _: Delivery) -> None:
        """Applies to the user's flow only if it still waits for this very request. The
        reference picture is deleted either way: its description is back, nothing needs it
        (a user who moved on, or erased their data, must not leave it behind)."""
        context = FSMContext(self.storage, StorageKey(self.bot_id, e.user_id, e.user_id))
        draft = await load_draft(context)
        waiting = await context.get_state() == Generate.describing.state
        if draft is None or not waiting or draft.describe_id != e.request_id:
            log.info("description %s is no longer awaited", e.request_id)
            await self.describer.forget(e.request_id)
            return
        t = Translator(self.texts, await self.avatars.user_language(e.user_id) or "en")
        if e.caption:
            avatar = await self.avatars.get(e.user_id, draft.avatar_id) if draft.avatar_id else None
            prompt = from_caption(e.caption, Subject.of(avatar))
            await save_draft(context, draft.with_prompt(prompt), Generate.settings)
            view = views.described(t, prompt)
        else:
            await save_draft(context, draft, Generate.describe)
            view = views.describe_failed(t, e.reason)
        if draft.describe_message_id is not None:
            await self.sender.edit(e.user_id, draft.describe_message_id, view.text, view.markup)
        await self.describer.forget(e.request_id)

    async def _step(
        self,
        event_id: str,
        raw_id: str,
        to: GenerationStatus,
        show: Callable[[Generation, Translator], Awaitable[None]],
    ) -> None:
        generation_id = _uuid(raw_id)
        async with self._lock(generation_id):
            moved = await self.generations.transition(event_id, generation_id, to)
            if moved is None:
                return
            await show(moved.generation, Translator(self.texts, moved.language))

    async def _running(self, generation: Generation, t: Translator) -> None:
        if generation.pack_order_id is not None:
            return  # a pack has one "on their way" message for all its pictures
        other = self.kinds.get(generation.kind)
        text = other.running(t, generation) if other else views.running(t, generation)
        await self._show(generation, text, None)

    async def _show(self, generation: Generation, text: str, markup: Any) -> None:
        chat, message = generation.progress_chat_id, generation.progress_message_id
        if chat is not None and message is not None:
            await self.sender.edit(chat, message, text, markup)
            return
        # Before the button's own message was recorded: this one may show the job instead.
        await announce(
            self.generations.pool, self.sender, generation.id, generation.user_id, text, markup
        )

    async def _tell_end(self, generation: Generation, text: str, markup: Any) -> None:
        """An end the user waits for is a new message: the phone notifies (an edit never
        does)."""
        await self.sender.send(generation.progress_chat_id or generation.user_id, text, markup)

    async def _close(self, generation: Generation) -> None:
        """The "generating…" message goes once the end is in the chat (a delivery, whichever
        kind made it, or the failure's new message)."""
        if generation.progress_message_id is not None:
            chat = generation.progress_chat_id or generation.user_id
            await self.sender.delete(chat, generation.progress_message_id)

    def _lock(self, generation_id: UUID) -> asyncio.Lock:
        """One event per generation at a time in this process, so "generating…" cannot be
        drawn over the results by a slow edit."""
        return self._locks.setdefault(generation_id, asyncio.Lock())
