"""THE outgoing Telegram sender for progress and notifications.

Telegram allows about 30 messages a second per bot and about one a second per chat (short
bursts tolerated), edits counted. Each chat gets a FIFO queue drained by its own task through
the `Pacer`'s buckets (global and per chat), the same ones a handler's direct reply waits for
(`app/pacing.py`). While a job waits for its turn, a newer edit of the same message replaces
its text, so a fast stream of progress events costs one request; one message is edited at
most once per `EDIT_INTERVAL`. A 429's `retry_after` pauses every chat; "message is not
modified" is success (and an edit to what is already shown is never sent); a 403 marks the
user inactive (via `on_forbidden`) and the chat is skipped until the user writes again.
Chatter (counters, acknowledgements) goes with `silent=True` (`disable_notification`); an
outcome the user waits for never does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import TelegramMethod
from aiogram.types import InlineKeyboardMarkup, Message

from services.bot.app.buckets import TokenBucket
from services.bot.app.metrics import BotMetrics
from services.bot.app.pacing import ChatPositions, Pacer, paced

log = logging.getLogger(__name__)
Markup = InlineKeyboardMarkup | None
ForbiddenHook = Callable[[int], Awaitable[None]]
T = TypeVar("T")
#: Seconds between two edits of one message: the last state wins in between.
EDIT_INTERVAL = 1.0
__all__ = ["EDIT_INTERVAL", "Sender", "TokenBucket"]


@dataclass
class _Job:
    kind: str  # send | edit | delete | call
    chat_id: int
    message_id: int | None
    text: str = ""
    markup: Markup = None
    waiters: list[asyncio.Future[Any]] = field(default_factory=list)
    method: TelegramMethod[Any] | None = None
    silent: bool = False


@dataclass
class _Chat:
    bucket: TokenBucket
    queue: deque[_Job] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None


class Sender:
    """Queue, pace, coalesce and deliver; callers await the outcome (or None on failure)."""

    def __init__(
        self,
        bot: Bot,
        *,
        global_rate: float = 30.0,
        chat_rate: float = 1.0,
        chat_burst: int = 3,
        max_attempts: int = 5,
        on_forbidden: ForbiddenHook | None = None,
        metrics: BotMetrics | None = None,
        pacer: Pacer | None = None,
        positions: ChatPositions | None = None,
    ):
        self.bot = bot
        self.pacer = pacer or Pacer(global_rate, chat_rate, chat_burst)
        self.positions = positions or ChatPositions()
        self._global = self.pacer.global_bucket
        self._edited_at: OrderedDict[tuple[int, int], float] = OrderedDict()
        self._max_attempts = max_attempts
        self._on_forbidden = on_forbidden
        self._chats: dict[int, _Chat] = {}
        self._blocked: set[int] = set()
        self._shown: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._metrics = metrics or BotMetrics()
        self._metrics.sender_queued.set_function(self.queued)

    async def send(
        self, chat_id: int, text: str, markup: Markup = None, *, silent: bool = False
    ) -> Message | None:
        """A new message; `silent` for chatter the user did not wait for (no sound)."""
        result = await self._submit(_Job("send", chat_id, None, text, markup, silent=silent))
        return result if isinstance(result, Message) else None

    async def show_progress(
        self, chat_id: int, message_id: int, text: str, markup: Markup = None
    ) -> int | None:
        """Update a live progress message where the user can see it: edited in place while
        it is among the last `RECENT_MESSAGES` of the chat, otherwise re-sent at the bottom
        (silently) and the old one deleted. The id now showing it, None if nothing could."""
        if not self.positions.buried(chat_id, message_id):
            return message_id if await self.edit(chat_id, message_id, text, markup) else None
        sent = await self.send(chat_id, text, markup, silent=True)
        if sent is None:
            return None
        await self.delete(chat_id, message_id)
        return sent.message_id

    async def edit(self, chat_id: int, message_id: int, text: str, markup: Markup = None) -> bool:
        """Edit a message; a queued edit of the same message is replaced, not repeated."""
        return bool(await self.enqueue_edit(chat_id, message_id, text, markup))

    def enqueue_edit(
        self, chat_id: int, message_id: int, text: str, markup: Markup = None
    ) -> asyncio.Future[Any]:
        """Queue an edit now (keeping the caller's order) and await the outcome later."""
        return self._submit(_Job("edit", chat_id, message_id, text, markup))

    async def delete(self, chat_id: int, message_id: int) -> bool:
        return bool(await self._submit(_Job("delete", chat_id, message_id)))

    async def call(self, chat_id: int, method: TelegramMethod[T]) -> T | None:
        """Any other Bot API call into a chat (a photo, an album, a document), paced and
        retried like a message; None when Telegram refused it."""
        result: T | None = await self._submit(_Job("call", chat_id, None, method=method))
        return result

    def queued(self) -> int:
        """Jobs waiting in the per-chat queues (a gauge: how far behind the sender is)."""
        return sum(len(chat.queue) for chat in self._chats.values())

    def unblock(self, chat_id: int) -> None:
        """The user wrote to us again, so they unblocked the bot."""
        self._blocked.discard(chat_id)

    async def close(self, grace: float = 10.0) -> None:
        """Let queued jobs finish for up to `grace` seconds, then drop the rest."""
        tasks = [c.task for c in self._chats.values() if c.task is not None]
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    def _submit(self, job: _Job) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if job.chat_id in self._blocked:
            future.set_result(None)
            return future
        if job.kind == "edit" and self._already_shown(job):
            self._metrics.progress_edits.labels("unchanged").inc()
            future.set_result(True)  # the same text is on screen: skip the request
            return future
        chat = self._chat(job.chat_id)
        pending = self._pending_edit(chat, job) if job.kind == "edit" else None
        if pending is not None:
            self._metrics.progress_edits.labels("coalesced").inc()
            pending.text, pending.markup = job.text, job.markup
            pending.waiters.append(future)
            return future
        job.waiters.append(future)
        chat.queue.append(job)
        if chat.task is None:
            chat.task = asyncio.create_task(self._drain(job.chat_id, chat))
        return future

    @staticmethod
    def _pending_edit(chat: _Chat, job: _Job) -> _Job | None:
        for queued in chat.queue:
            if queued.kind == "edit" and queued.message_id == job.message_id:
                return queued
        return None

    def _already_shown(self, job: _Job) -> bool:
        assert job.message_id is not None
        key = (job.chat_id, job.message_id)
        chat = self._chats.get(job.chat_id)
        queued = chat is not None and any(q.message_id == job.message_id for q in chat.queue)
        return not queued and self._shown.get(key) == _fingerprint(job)

    def _remember(self, job: _Job) -> None:
        """What each message shows now, for the last 10k messages edited."""
        if job.message_id is None:
            return
        key = (job.chat_id, job.message_id)
        self._shown[key] = _fingerprint(job)
        self._shown.move_to_end(key)
        while len(self._shown) > 10_000:
            self._shown.popitem(last=False)

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            if len(self._chats) > 10_000:
                self._evict_idle()
            chat = _Chat(self.pacer.chat(chat_id))
            self._chats[chat_id] = chat
        return chat

    def _evict_idle(self) -> None:
        for chat_id in [k for k, c in self._chats.items() if c.task is None and c.bucket.full]:
            del self._chats[chat_id]

    async def _drain(self, chat_id: int, chat: _Chat) -> None:
        paced()  # this task's calls took their token here: the session middleware skips them
        try:
            while chat.queue:
                await self._edit_pause(chat)
                if chat.queue[0].kind != "delete":  # deletes are not messages: no token
                    await chat.bucket.acquire()
                    await self._global.acquire()
                job = chat.queue.popleft()
                result = await self._deliver(job)
                if job.kind == "edit":
                    self._metrics.progress_edits.labels("sent" if result else "failed").inc()
                if job.kind == "edit" and result:
                    self._remember(job)
                if job.kind == "edit" and job.message_id is not None:
                    self._edited(chat_id, job.message_id)
                _resolve(job, result)
                while chat_id in self._blocked and chat.queue:
                    _resolve(chat.queue.popleft(), None)
        finally:
            chat.task = None
            while chat.queue:  # only after a cancel: nobody must wait forever
                _resolve(chat.queue.popleft(), None)

    async def _edit_pause(self, chat: _Chat) -> None:
        """Hold an edit of a message edited less than `EDIT_INTERVAL` ago; newer edits
        of it coalesce into the waiting job meanwhile."""
        job = chat.queue[0]
        if job.kind != "edit" or job.message_id is None:
            return
        last = self._edited_at.get((job.chat_id, job.message_id))
        if last is not None:
            wait = last + EDIT_INTERVAL - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)

    def _edited(self, chat_id: int, message_id: int) -> None:
        self._edited_at[(chat_id, message_id)] = time.monotonic()
        self._edited_at.move_to_end((chat_id, message_id))
        while len(self._edited_at) > 10_000:
            self._edited_at.popitem(last=False)

    async def _deliver(self, job: _Job) -> Any:
        for attempt in range(1, self._max_attempts + 1):
            if job.chat_id in self._blocked:
                return None
            try:
                return await self._call(job)
            except TelegramRetryAfter as exc:
                log.warning("telegram flood control: retry after %ss", exc.retry_after)
                self._global.hold(exc.retry_after)
                await self._global.acquire()
            except TelegramBadRequest as exc:
                if "message is not modified" in exc.message:
                    return True
                log.warning("telegram refused %s in chat %s: %s", job.kind, job.chat_id, exc)
                return None
            except TelegramForbiddenError:
                log.info("chat %s blocked the bot; not sending there any more", job.chat_id)
                self._blocked.add(job.chat_id)
                if self._on_forbidden is not None:
                    await self._on_forbidden(job.chat_id)
                return None
            except (TelegramNetworkError, TelegramServerError) as exc:
                log.warning("telegram %s failed (attempt %d): %s", job.kind, attempt, exc)
                await asyncio.sleep(min(0.5 * 2**attempt, 10.0))
        return None

    async def _call(self, job: _Job) -> Any:
        if job.kind == "call":
            assert job.method is not None
            return await self.bot(job.method)
        if job.kind == "send":
            return await self.bot.send_message(
                job.chat_id,
                job.text,
                reply_markup=job.markup,
                disable_notification=True if job.silent else None,
            )
        assert job.message_id is not None
        if job.kind == "edit":
            await self.bot.edit_message_text(
                text=job.text,
                chat_id=job.chat_id,
                message_id=job.message_id,
                reply_markup=job.markup,
            )
            return True
        with contextlib.suppress(TelegramBadRequest):
            return await self.bot.delete_message(job.chat_id, job.message_id)
        return False


def _resolve(job: _Job, result: Any) -> None:
    for waiter in job.waiters:
        if not waiter.done():
            waiter.set_result(result)


def _fingerprint(job: _Job) -> int:
    markup = job.markup.model_dump_json() if job.markup is not None else ""
    return hash((job.text, markup))
