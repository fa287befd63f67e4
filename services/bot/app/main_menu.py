"""The main menu every feature returns to (`MenuCb`), and the "back to menu" button."""

from __future__ import annotations

from typing import Literal

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup

from services.bot.app.keyboards import keyboard, per_language
from services.bot.app.texts import Translator
from services.bot.credits.callbacks import ShopCb
from services.bot.gallery.callbacks import GalleryCb
from services.bot.generation.callbacks import GenCb
from services.bot.packs.callbacks import PackCb


class MenuCb(CallbackData, prefix="menu"):
    action: Literal["main", "create", "avatars", "settings", "help"]


@per_language
def main_menu(t: Translator) -> InlineKeyboardMarkup:
    """Every completed training and every /start shows it (see `keyboards.per_language`)."""
    return keyboard(
        t,
        ("generate.menu_button", GenCb(action="home")),
        ("gallery.menu_button", GalleryCb()),
        ("packs.menu_button", PackCb(action="list")),
        ("menu.create", MenuCb(action="create")),
        ("menu.avatars", MenuCb(action="avatars")),
        ("menu.credits", ShopCb(action="open")),
        ("menu.settings", MenuCb(action="settings")),
        ("menu.help", MenuCb(action="help")),
        rows=(2, 1, 2, 2, 1),
    )


@per_language
def back_to_menu(t: Translator) -> InlineKeyboardMarkup:
    return keyboard(t, ("menu.back", MenuCb(action="main")))
