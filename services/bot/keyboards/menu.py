"""Main menu, settings and small navigation keyboards."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.keyboards.callbacks import LangCb, MenuCb
from services.bot.keyboards.gallery import GalleryCb
from services.bot.keyboards.generate import GenCb
from services.bot.keyboards.shared import per_language
from services.bot.keyboards.shop import ShopCb
from services.bot.texts import Translator


@per_language
def main_menu(t: Translator) -> InlineKeyboardMarkup:
    """Every completed training and every /start shows it (see `shared.per_language`)."""
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


def languages(t: Translator) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=t.plain("settings.lang_en"), callback_data=LangCb(code="en"))
    kb.button(text=t.plain("settings.lang_ru"), callback_data=LangCb(code="ru"))
    kb.button(text=t.plain("menu.back"), callback_data=MenuCb(action="main"))
    kb.adjust(2, 1)
    return kb.as_markup()
