"""Groups, supergroups and channels: the bot works in private chats only.

This router goes first. Whatever comes from a shared chat stops here: being added gets one
short note, a command gets the same note, a button gets it as an alert, anything else is
ignored. Nobody becomes a user (no row, no FSM state) by talking near the bot in a group,
and a kick from a group is not mistaken for a user blocking the bot in private.
"""

from __future__ import annotations

import contextlib

from aiogram import Bot, F, Router
from aiogram.enums import ChatMemberStatus, ChatType
from aiogram.exceptions import TelegramAPIError
from aiogram.types import CallbackQuery, ChatMemberUpdated, Message
from aiogram.types import User as TgUser

from services.bot.app.filters import Is
from services.bot.app.routing import FeatureRouter
from services.bot.app.texts import Texts, Translator, language_for

SHARED = frozenset({ChatType.GROUP, ChatType.SUPERGROUP, ChatType.CHANNEL})
PRESENT = frozenset({ChatMemberStatus.MEMBER, ChatMemberStatus.ADMINISTRATOR})


def _t(texts: Texts, user: TgUser | None) -> Translator:
    """The middleware gives no `t` here (no user row), so speak the sender's app language."""
    return Translator(texts, language_for(user.language_code if user else None))


async def added(event: ChatMemberUpdated, bot: Bot, texts: Texts) -> None:
    """Say once where to find the bot; a group that forbids it to write just stays quiet."""
    with contextlib.suppress(TelegramAPIError):
        await bot.send_message(event.chat.id, _t(texts, event.from_user)("groups.private_only"))


async def membership_changed(event: ChatMemberUpdated) -> None:
    """Removed or restricted in a group: nothing to do (and not a private block)."""


async def command(message: Message, texts: Texts) -> None:
    with contextlib.suppress(TelegramAPIError):
        await message.reply(_t(texts, message.from_user)("groups.private_only"))


async def ignored(message: Message) -> None:
    """Ordinary group chatter is none of the bot's business."""


async def button(callback: CallbackQuery, texts: Texts) -> None:
    await callback.answer(_t(texts, callback.from_user).plain("groups.private_only"))


def build() -> Router:
    router = FeatureRouter(name="groups")
    router.my_chat_member.filter(Is(F.chat.type.in_(SHARED)))
    router.message.filter(Is(F.chat.type.in_(SHARED)))
    router.callback_query.filter(Is(F.message.chat.type.in_(SHARED)))
    router.my_chat_member.register(added, Is(F.new_chat_member.status.in_(PRESENT)))
    router.my_chat_member.register(membership_changed)
    router.message.register(command, Is(F.text.startswith("/")))
    router.message.register(ignored)
    router.callback_query.register(button)
    return router
