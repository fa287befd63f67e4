"""The shop's button data and the way other features send a user to it.

Public (see `services/bot/credits/__init__.py`): a training or a generation refused for lack of
credits answers with `not_enough_credits`, whose "top up" button opens the shop; the main menu
links to the shop with `ShopCb`. A refund button carries the purchase's ledger `seq`, checked
against the presser's own purchases on press.
"""

from __future__ import annotations

from typing import Literal

from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup
from pydantic import Field

from services.bot.app.keyboards import keyboard
from services.bot.app.texts import Translator
from services.kit.credits import InsufficientCredits


class ShopCb(CallbackData, prefix="shop"):
    """`open` shows balance and packages in place of the pressed message, `show` below it
    (under a card that must stay, such as the training prices), `buy` sends the package's
    invoice, `refund` asks to confirm refunding purchase `seq`, `refund_yes` does it."""

    action: Literal["open", "show", "buy", "refund", "refund_yes"]
    # A package id as `CREDIT_PACKAGES` allows it (a-z0-9_, ≤ 16): forged text is stale data.
    package: str = Field(default="", pattern=r"^[a-z0-9_]{0,16}$")
    # Bounded like the column it names: a forged huge number is stale data, not a query.
    seq: int = Field(default=0, ge=0, le=2**31 - 1)


def buy_below(t: Translator) -> InlineKeyboardButton:
    """ "⭐ Buy credits" for a card that stays: the shop comes as a new message."""
    return InlineKeyboardButton(
        text=t.plain("credits.buy_button"), callback_data=ShopCb(action="show").pack()
    )


def top_up(t: Translator) -> InlineKeyboardMarkup:
    """Under a "not enough credits" answer: one press to the shop."""
    return keyboard(t, ("credits.buy_button", ShopCb(action="open")))


async def not_enough_credits(
    callback: CallbackQuery, t: Translator, exc: InsufficientCredits
) -> None:
    """Keep the pressed screen (the user may top up and press again) and say, with a button
    to the shop, what is missing."""
    await callback.answer()
    text = t("credits.not_enough", price=exc.needed, balance=exc.balance)
    if callback.message is not None and callback.bot is not None:
        await callback.bot.send_message(callback.message.chat.id, text, reply_markup=top_up(t))
