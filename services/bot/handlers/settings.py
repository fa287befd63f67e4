"""/settings: the interface language (first set from Telegram's language_code)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from services.bot.avatars import AvatarService
from services.bot.handlers.common import edit_or_send
from services.bot.keyboards import menu
from services.bot.keyboards.callbacks import LangCb, MenuCb
from services.bot.models import User
from services.bot.routing import FeatureRouter
from services.bot.texts import Texts, Translator


async def cmd_settings(message: Message, t: Translator) -> None:
    await message.answer(t("settings.title"), reply_markup=menu.languages(t))


async def show(callback: CallbackQuery, t: Translator) -> None:
    await edit_or_send(callback, t("settings.title"), menu.languages(t))
    await callback.answer()


async def set_language(
    callback: CallbackQuery, callback_data: LangCb, user: User, texts: Texts, avatars: AvatarService
) -> None:
    """Answer in the new language at once: the middleware's `t` still speaks the old one."""
    await avatars.set_language(user.id, callback_data.code)
    t = Translator(texts, callback_data.code)
    await edit_or_send(callback, t("settings.saved"), menu.main_menu(t))
    await callback.answer()


def build() -> Router:
    router = FeatureRouter(name="settings", callbacks=(MenuCb, LangCb))
    router.message.register(cmd_settings, Command("settings"))
    router.callback_query.register(show, MenuCb.filter(F.action == "settings"))
    router.callback_query.register(set_language, LangCb.filter())
    return router
