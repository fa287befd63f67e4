"""The sender against a fake Telegram session: coalescing, retry_after, not-modified, 403."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.methods import EditMessageText, SendMessage, TelegramMethod
from aiogram.types import Chat, Message

from services.bot.app.sender import Sender, TokenBucket


class FakeSession(BaseSession):
    """Records calls; `errors` holds exceptions to raise for the next calls, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[TelegramMethod[Any]] = []
        self.errors: list[Exception] = []
        self.gate: asyncio.Event | None = None

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[Any],
        timeout: int | None = None,  # noqa: ASYNC109 - BaseSession's signature
    ) -> Any:
        if self.gate is not None:
            await self.gate.wait()
        self.calls.append(method)
        if self.errors:
            raise self.errors.pop(0)
        if isinstance(method, SendMessage):
            chat = Chat(id=int(method.chat_id), type="private")
            return Message(
                message_id=len(self.calls), date=datetime.now(UTC), chat=chat, text=method.text
            )
        return True

    async def close(self) -> None:
        pass

    async def stream_content(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
        raise NotImplementedError


def make(session: FakeSession, **kw: Any) -> Sender:
    bot = Bot("123456:test-token-abcdefgh", session=session)
    return Sender(bot, **{"global_rate": 1000.0, "chat_rate": 1000.0, **kw})


def edits(session: FakeSession) -> list[str]:
    return [m.text for m in session.calls if isinstance(m, EditMessageText)]


async def test_edits_of_one_message_are_coalesced_to_the_latest() -> None:
    session = FakeSession()
    session.gate = asyncio.Event()
    sender = make(session)
    first = asyncio.ensure_future(sender.edit(1, 10, "10%"))
    await asyncio.sleep(0.01)  # the first edit is in flight, blocked at the gate
    later = [asyncio.ensure_future(sender.edit(1, 10, f"{p}%")) for p in (20, 30, 40)]
    await asyncio.sleep(0.01)
    session.gate.set()
    assert all(await asyncio.gather(first, *later))
    assert edits(session) == ["10%", "40%"]


async def test_a_queued_edit_keeps_its_place_with_the_newest_text() -> None:
    session = FakeSession()
    sender = make(session)
    await asyncio.gather(sender.edit(1, 10, "a"), sender.edit(1, 11, "b"), sender.edit(1, 10, "c"))
    # all three were queued before the first went out: message 10 keeps its place, newest text
    assert edits(session) == ["c", "b"]


async def test_retry_after_is_obeyed_then_the_call_succeeds() -> None:
    session = FakeSession()
    session.errors.append(
        TelegramRetryAfter(method=SendMessage(chat_id=1, text="x"), message="flood", retry_after=1)
    )
    sender = make(session)
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = await sender.send(1, "hello")
    assert sent is not None
    assert sent.text == "hello"
    assert loop.time() - started >= 0.95
    assert len(session.calls) == 2


async def test_message_not_modified_counts_as_success() -> None:
    session = FakeSession()
    session.errors.append(
        TelegramBadRequest(
            method=EditMessageText(text="x"),
            message="Bad Request: message is not modified: specified new message content...",
        )
    )
    assert await make(session).edit(1, 10, "same") is True


async def test_forbidden_marks_the_chat_and_stops_sending() -> None:
    session = FakeSession()
    session.errors.append(
        TelegramForbiddenError(method=SendMessage(chat_id=7, text="x"), message="bot was blocked")
    )
    blocked: list[int] = []

    async def on_forbidden(chat_id: int) -> None:
        blocked.append(chat_id)

    sender = make(session, on_forbidden=on_forbidden)
    assert await sender.send(7, "one") is None
    assert await sender.send(7, "two") is None
    assert blocked == [7]
    assert len(session.calls) == 1
    sender.unblock(7)
    assert await sender.send(7, "three") is not None


async def test_per_chat_rate_is_respected() -> None:
    session = FakeSession()
    sender = make(session, chat_rate=20.0, chat_burst=1)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(*(sender.send(5, str(i)) for i in range(5)))
    assert loop.time() - started >= 4 / 20 - 0.02


async def test_token_bucket_hold_delays_acquire() -> None:
    bucket = TokenBucket(rate=100.0, capacity=5)
    bucket.hold(0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await bucket.acquire()
    assert loop.time() - started >= 0.18
