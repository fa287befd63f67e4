"""Keeps aiogram's per-method response models alive for the life of the process.

aiogram validates every Bot API answer with `Response[<the method's result type>]`, a
pydantic generic model built on first use and cached only *weakly* by pydantic 2. Once a
garbage collection frees it, the next call of that method rebuilds its validation schema
(~9 ms on the project's machine). In scenario 3 of the benchmarks that rebuilding was 17 % of
the bot's CPU: every handler reply, not only the sender's deliveries, pays it. One strong
reference per result type, taken on the way to the first call, ends it.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType


class KeepResponseModels(BaseRequestMiddleware):
    def __init__(self) -> None:
        self.models: dict[Any, type[Response[Any]]] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        returning = method.__returning__
        if returning not in self.models:
            self.models[returning] = Response[returning]  # type: ignore[valid-type]
        return await make_request(bot, method)
