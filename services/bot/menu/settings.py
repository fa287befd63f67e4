"""/settings: the interface language (first set from Telegram's language_code)."""

from __future__ import annotations

from typing import Literal

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from services.bot.app import main_menu as menu
from services.bot.app.keyboards import keyboard
from services.bot.app.main_menu import MenuCb
from services.bot.app.models import User
from services.bot.app.routing import FeatureRouter
from services.bot.app.screens import edit_or_send
from services.bot.app.texts import Texts, Translator
from services.bot.avatars.service import AvatarService


class LangCb(CallbackData, prefix="lang"):
    code: Literal["en", "ru"]


def languages(t: Translator) -> InlineKeyboardMarkup:
    return keyboard(
        t,
        ("settings.lang_en", LangCb(code="en")),
        ("settings.lang_ru", LangCb(code="ru")),
        ("menu.back", MenuCb(action="main")),
        rows=(2, 1),
    )


async def cmd_settings(message: Message, t: Translator) -> None:
    await message.answer(t("settings.title"), reply_markup=languages(t))


async def show(callback: CallbackQuery, t: Translator) -> None:
    await edit_or_send(callback, t("settings.title"), languages(t))
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
