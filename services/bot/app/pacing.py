"""One pace for every message the bot puts into a chat, and where each chat's newest message is.

Telegram counts sends *and edits* against about one message a second per private chat (a
short burst tolerated). The sender's queues pace progress and notifications, but a handler's
own reply (an answer to a command, a screen edited after a press) used to go out unpaced and
spend the same allowance, so the next paced message drew a 429. `PaceMiddleware` takes every
message-making Bot API call through the same per-chat bucket the sender drains from; the
sender marks its own calls (`paced()`), which already waited for their token.

`ChatPositions` remembers the newest message id seen in each chat, ours (from every result)
and the user's (from incoming updates). In a private chat Telegram numbers both sides'
messages in one sequence, so `buried()` tells whether a message is still among the last few
on the user's screen: a progress message further up is re-sent at the bottom rather than
edited out of sight (an edit never notifies, and one far up the chat is not even seen).
"""

from __future__ import annotations

import contextvars
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods import (
    CopyMessage,
    EditMessageCaption,
    EditMessageMedia,
    EditMessageReplyMarkup,
    EditMessageText,
    ForwardMessage,
    SendAnimation,
    SendAudio,
    SendDocument,
    SendInvoice,
    SendMediaGroup,
    SendMessage,
    SendPhoto,
    SendSticker,
    SendVideo,
    SendVoice,
    TelegramMethod,
)
from aiogram.methods.base import TelegramType
from aiogram.types import Message, TelegramObject, Update

from services.bot.app.buckets import TokenBucket

#: How many newer messages a progress message may have below it and still be edited in
#: place: a phone shows a handful of short messages at once, and the newest few are the
#: ones the user is looking at.
RECENT_MESSAGES = 3
#: Methods that put (or change) a message in a chat: each spends one of the chat's tokens.
PACED = (
    SendMessage, SendPhoto, SendDocument, SendMediaGroup, SendAnimation, SendAudio, SendVideo,
    SendVoice, SendSticker, SendInvoice, CopyMessage, ForwardMessage,
    EditMessageText, EditMessageCaption, EditMessageMedia, EditMessageReplyMarkup,
)  # fmt: skip
_PACED_BY_SENDER: contextvars.ContextVar[bool] = contextvars.ContextVar("paced", default=False)


def paced() -> None:
    """Mark the current task's calls as already paced (the sender took their token)."""
    _PACED_BY_SENDER.set(True)


class Pacer:
    """The bot's global bucket and one bucket per chat, shared by the sender and handlers."""

    def __init__(
        self,
        global_rate: float = 30.0,
        chat_rate: float = 1.0,
        chat_burst: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ):
        # A global burst of a third of Telegram's: pacing at exactly Telegram's own bucket
        # leaves no room for requests that arrive bunched up (a slow first connection).
        self.global_bucket = TokenBucket(global_rate, max(1.0, global_rate / 3), clock)
        self._chat_rate = chat_rate
        # One token of Telegram's per-chat burst is kept in reserve for the same reason: a
        # reply that reaches Telegram a little late followed by one on time would otherwise
        # look like two within a second (seen as one 429 per journey before the reserve).
        self._chat_burst = max(1, chat_burst - 1)
        self._clock = clock
        self._chats: OrderedDict[int, TokenBucket] = OrderedDict()

    def chat(self, chat_id: int) -> TokenBucket:
        bucket = self._chats.get(chat_id)
        if bucket is None:
            bucket = TokenBucket(self._chat_rate, self._chat_burst, self._clock)
            self._chats[chat_id] = bucket
            if len(self._chats) > 10_000:
                for old in [k for k, b in self._chats.items() if b.full][:1000]:
                    del self._chats[old]
        return bucket

    async def acquire(self, chat_id: int) -> None:
        await self.chat(chat_id).acquire()
        await self.global_bucket.acquire()


class ChatPositions:
    """The newest message id seen per chat (both sides), for the last 10k chats."""

    def __init__(self, recent: int = RECENT_MESSAGES):
        self.recent = recent
        self._latest: OrderedDict[int, int] = OrderedDict()

    def seen(self, chat_id: int, message_id: int) -> None:
        if message_id > self._latest.get(chat_id, 0):
            self._latest[chat_id] = message_id
        self._latest.move_to_end(chat_id)
        while len(self._latest) > 10_000:
            self._latest.popitem(last=False)

    def seen_result(self, result: Any) -> None:
        """Every message a Bot API call returned (one, or an album's list)."""
        for message in result if isinstance(result, list) else [result]:
            if isinstance(message, Message):
                self.seen(message.chat.id, message.message_id)

    def buried(self, chat_id: int, message_id: int) -> bool:
        """More than `recent` messages are below this one: an edit would go unseen."""
        return message_id < self._latest.get(chat_id, 0) - self.recent


class PaceMiddleware(BaseRequestMiddleware):
    """Session middleware: every message-making call waits for its chat's token (unless the
    sender already took it) and its result moves the chat's newest message id."""

    def __init__(self, pacer: Pacer, positions: ChatPositions):
        self.pacer = pacer
        self.positions = positions

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        chat_id = getattr(method, "chat_id", None)
        mine = isinstance(method, PACED) and isinstance(chat_id, int)
        if mine and isinstance(chat_id, int) and not _PACED_BY_SENDER.get():
            await self.pacer.acquire(chat_id)
        result = await make_request(bot, method)
        self.positions.seen_result(result)
        return result


class IncomingPositions(BaseMiddleware):
    """Dispatcher outer middleware: a user's message moves its chat's newest message id."""

    def __init__(self, positions: ChatPositions):
        self.positions = positions

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, Update) and event.message is not None:
            self.positions.seen(event.message.chat.id, event.message.message_id)
        return await handler(event, data)
