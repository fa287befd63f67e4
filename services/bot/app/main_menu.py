"""The main menu every feature returns to (`MenuCb`), and the "back to menu" button."""

from __future__ import annotations

from typing import Literal

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.app.keyboard_cache import per_language
from services.bot.app.texts import Translator
from services.bot.credits.callbacks import ShopCb
from services.bot.gallery.callbacks import GalleryCb
from services.bot.generation.callbacks import GenCb


class MenuCb(CallbackData, prefix="menu"):
    action: Literal["main", "create", "avatars", "settings", "help"]


@per_language
def main_menu(t: Translator) -> InlineKeyboardMarkup:
    """Every completed training and every /start shows it (see `keyboard_cache.per_language`)."""
    kb = InlineKeyboardBuilder()
    kb.button(text=t.plain("generate.menu_button"), callback_data=GenCb(action="home"))
    kb.button(text=t.plain("gallery.menu_button"), callback_data=GalleryCb())
    kb.button(text=t.plain("menu.create"), callback_data=MenuCb(action="create"))
    kb.button(text=t.plain("menu.avatars"), callback_data=MenuCb(action="avatars"))
    kb.button(text=t.plain("menu.credits"), callback_data=ShopCb(action="open"))
    kb.button(text=t.plain("menu.settings"), callback_data=MenuCb(action="settings"))
    kb.button(text=t.plain("menu.help"), callback_data=MenuCb(action="help"))
    kb.adjust(2, 1, 2, 2)
    return kb.as_markup()


@per_language
def back_to_menu(t: Translator) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=t.plain("menu.back"), callback_data=MenuCb(action="main"))
    return kb.as_markup()
