"""Outer middleware that knows who is talking: upserts the user and binds their language."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import Chat, TelegramObject
from aiogram.types import User as TgUser

from services.bot.app.config import BotConfig
from services.bot.app.names import printable
from services.bot.app.sender import Sender
from services.bot.app.texts import Texts, Translator, language_for
from services.bot.avatars.service import AvatarService

Next = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UserMiddleware(BaseMiddleware):
    """Puts `user` (the upserted row) and `t` (a Translator in the user's language) in data."""

    async def __call__(self, handler: Next, event: TelegramObject, data: dict[str, Any]) -> Any:
        tg_user: TgUser | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        if tg_user is None or tg_user.is_bot or (chat is not None and chat.type != "private"):
            # Groups and channels are answered by the `groups` router; nobody there becomes
            # a user of ours (no row, no language) just by being in the same chat as the bot.
            return await handler(event, data)
        avatars: AvatarService = data["avatars"]
        config: BotConfig = data["config"]
        texts: Texts = data["texts"]
        sender: Sender = data["sender"]
        user = await avatars.upsert_user(
            tg_user.id,
            printable(tg_user.username, 64),
            printable(tg_user.first_name, 64) or "",
            language_for(tg_user.language_code),
            tg_user.id in config.admin_ids,
        )
        sender.unblock(tg_user.id)
        data["user"] = user
        data["t"] = Translator(texts, user.language)
        return await handler(event, data)
