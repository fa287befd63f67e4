"""The last line of defence: log the failure, tell the user (in their language) it failed."""

from __future__ import annotations

import contextlib
import logging

import asyncpg
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import ErrorEvent

from services.bot.app.texts import Texts, language_for
from services.bot.avatars.service import AvatarService

log = logging.getLogger(__name__)


async def on_error(event: ErrorEvent, texts: Texts, avatars: AvatarService) -> bool:
    """Registered on `dp.errors`: never a raw exception in the chat."""
    update = event.update
    callback, message = update.callback_query, update.message
    sender = callback.from_user if callback else message.from_user if message else None
    if isinstance(event.exception, TelegramForbiddenError):
        # The user blocked the bot while we were answering: nothing failed, nobody to tell.
        log.info("update %s: the user has blocked the bot", update.update_id)
        if sender is not None:
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                await avatars.set_active(sender.id, False)
        return True
    log.error("update %s failed", update.update_id, exc_info=event.exception)
    if sender is None:
        return True
    lang = language_for(sender.language_code)
    with contextlib.suppress(asyncpg.PostgresError, OSError):
        lang = await avatars.user_language(sender.id) or lang
    with contextlib.suppress(TelegramAPIError):
        if callback is not None:
            await callback.answer(texts.plain(lang, "error.generic"), show_alert=True)
        elif message is not None:
            await message.answer(texts.get(lang, "error.generic"))
    return True
