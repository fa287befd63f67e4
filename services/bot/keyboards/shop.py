"""Buttons of the credits shop: ids only; prices are looked up from config on press."""

from __future__ import annotations

from typing import Literal

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.texts import Translator


class ShopCb(CallbackData, prefix="shop"):
    """`open` shows balance and packages, `buy` sends the package's invoice."""

    action: Literal["open", "buy"]
    package: str = ""


def top_up(t: Translator) -> InlineKeyboardMarkup:
    """Under a "not enough credits" answer: one press to the shop."""
    kb = InlineKeyboardBuilder()
    kb.button(text=t.plain("credits.buy_button"), callback_data=ShopCb(action="open"))
    return kb.as_markup()
