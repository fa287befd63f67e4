"""Last router: stale or forged buttons and messages nobody expected get a polite answer."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message

from services.bot.app import main_menu as menu
from services.bot.app.filters import Is
from services.bot.app.routing import FeatureRouter
from services.bot.app.texts import Translator


async def stale_button(callback: CallbackQuery, t: Translator) -> None:
    await callback.answer(t.plain("common.stale"), show_alert=True)


async def unknown_command(message: Message, t: Translator) -> None:
    """A mistyped or unknown /command (admin commands included, for non-admins)."""
    await message.answer(t("common.unknown_command"), reply_markup=menu.main_menu(t))


async def unexpected_message(message: Message, t: Translator) -> None:
    await message.answer(t("common.unknown"), reply_markup=menu.main_menu(t))


def build() -> Router:
    router = FeatureRouter(name="fallback")
    router.callback_query.register(stale_button)
    router.message.register(unknown_command, Is(F.text.startswith("/")))
    router.message.register(unexpected_message)
    return router
