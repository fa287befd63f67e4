"""THE outgoing Telegram sender for progress and notifications.

Telegram allows about 30 messages a second per bot and about one a second per chat (short
bursts tolerated). Each chat gets a FIFO queue drained by its own task through two token
buckets (global and per chat). While a job waits for its turn, a newer edit of the same
message replaces its text, so a fast stream of progress events costs one request. A 429's
`retry_after` pauses every chat; "message is not modified" is success; a 403 marks the user
inactive (via `on_forbidden`) and the chat is skipped until the user writes again.
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

from services.bot.app.metrics import BotMetrics

log = logging.getLogger(__name__)
Markup = InlineKeyboardMarkup | None
ForbiddenHook = Callable[[int], Awaitable[None]]
T = TypeVar("T")


class TokenBucket:
    """`rate` tokens a second, up to `capacity`; `hold()` stops issuing for a while."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()
        self._hold_until = 0.0
        self._lock = asyncio.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    @property
    def full(self) -> bool:
        self._refill(self._clock())
        return self._tokens >= self.capacity

    def hold(self, seconds: float) -> None:
        self._hold_until = max(self._hold_until, self._clock() + seconds)

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._refill(now)
                wait = self._hold_until - now
                if wait <= 0 and self._tokens >= 1:
                    self._tokens -= 1
                    return
                await asyncio.sleep(max(wait, (1 - self._tokens) / self.rate, 0.001))


@dataclass
class _Job:
    kind: str  # send | edit | delete | call
    chat_id: int
    message_id: int | None
    text: str = ""
    markup: Markup = None
    waiters: list[asyncio.Future[Any]] = field(default_factory=list)
    method: TelegramMethod[Any] | None = None


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
    ):
        self.bot = bot
        # A burst of a third of Telegram's: pacing at exactly Telegram's own bucket leaves no
        # room for requests that arrive bunched up (a slow first connection), and Telegram
        # answers 429. Two thirds of its burst in reserve absorb ~0.7 s of such jitter.
        self._global = TokenBucket(global_rate, max(1.0, global_rate / 3))
        self._chat_rate = chat_rate
        self._chat_burst = chat_burst
        self._max_attempts = max_attempts
        self._on_forbidden = on_forbidden
        self._chats: dict[int, _Chat] = {}
        self._blocked: set[int] = set()
        self._shown: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._metrics = metrics or BotMetrics()
        self._metrics.sender_queued.set_function(self.queued)

    async def send(self, chat_id: int, text: str, markup: Markup = None) -> Message | None:
        result = await self._submit(_Job("send", chat_id, None, text, markup))
        return result if isinstance(result, Message) else None

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
            chat = _Chat(TokenBucket(self._chat_rate, self._chat_burst))
            self._chats[chat_id] = chat
        return chat

    def _evict_idle(self) -> None:
        for chat_id in [k for k, c in self._chats.items() if c.task is None and c.bucket.full]:
            del self._chats[chat_id]

    async def _drain(self, chat_id: int, chat: _Chat) -> None:
        try:
            while chat.queue:
                await chat.bucket.acquire()
                await self._global.acquire()
                job = chat.queue.popleft()
                result = await self._deliver(job)
                if job.kind == "edit":
                    self._metrics.progress_edits.labels("sent" if result else "failed").inc()
                if job.kind == "edit" and result:
                    self._remember(job)
                _resolve(job, result)
                while chat_id in self._blocked and chat.queue:
                    _resolve(chat.queue.popleft(), None)
        finally:
            chat.task = None
            while chat.queue:  # only after a cancel: nobody must wait forever
                _resolve(chat.queue.popleft(), None)

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
            return await self.bot.send_message(job.chat_id, job.text, reply_markup=job.markup)
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
