"""Obeys Telegram's flood control for every Bot API call, direct handler replies included.

The sender paces progress edits so they rarely hit a 429; a handler's own reply (an edit
after a button press) is not paced, and a burst of clicks can still draw one. Waiting the
`retry_after` Telegram names and trying again is what Telegram asks for; past a short
bound the error propagates and the error handler tells the user.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.methods import (
    EditMessageCaption,
    EditMessageMedia,
    EditMessageReplyMarkup,
    EditMessageText,
    TelegramMethod,
)
from aiogram.methods.base import TelegramType

log = logging.getLogger(__name__)
EDITS = (EditMessageText, EditMessageCaption, EditMessageMedia, EditMessageReplyMarkup)


class RetryAfterMiddleware(BaseRequestMiddleware):
    def __init__(self, attempts: int = 3, max_wait: float = 10.0):
        self.attempts = attempts
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        waited = 0.0
        for attempt in range(1, self.attempts + 1):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt == self.attempts or waited + exc.retry_after > self.max_wait:
                    raise
                log.info(
                    "flood control on %s, retry in %ss", type(method).__name__, exc.retry_after
                )
                waited += exc.retry_after
                await asyncio.sleep(exc.retry_after)
        raise AssertionError("unreachable")


class NotModifiedMiddleware(BaseRequestMiddleware):
    """An edit that changes nothing is done: Telegram's "message is not modified" becomes
    success (True, as for an inline message), for every caller at once.

    A button pressed twice, or a stale menu pressed again, re-renders the same screen; each
    handler catching that 400 itself is how one of them forgets to.
    """

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        try:
            return await make_request(bot, method)
        except TelegramBadRequest as exc:
            if isinstance(method, EDITS) and "message is not modified" in exc.message:
                return True
            raise
