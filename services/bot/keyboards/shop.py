"""Buttons of the credits shop: ids only; prices are looked up from config on press.

A refund button carries the purchase's ledger `seq` (a small per-user number, checked
against the presser's own purchases), never Telegram's long charge id or an amount.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder
from pydantic import Field

from services.bot.keyboards.callbacks import MenuCb
from services.bot.pricing import Package
from services.bot.star_refunds import Purchase
from services.bot.texts import Translator


class ShopCb(CallbackData, prefix="shop"):
    """`open` shows balance and packages, `buy` sends the package's invoice, `refund` asks
    to confirm refunding purchase `seq`, `refund_yes` does it."""

    action: Literal["open", "buy", "refund", "refund_yes"]
    package: str = ""
    # Bounded like the column it names: a forged huge number is stale data, not a query.
    seq: int = Field(default=0, ge=0, le=2**31 - 1)


def top_up(t: Translator) -> InlineKeyboardMarkup:
    """Under a "not enough credits" answer: one press to the shop."""
    kb = InlineKeyboardBuilder()
    kb.button(text=t.plain("credits.buy_button"), callback_data=ShopCb(action="open"))
    return kb.as_markup()


def shop(
    t: Translator, packages: Iterable[Package], refundable: Iterable[Purchase]
) -> InlineKeyboardMarkup:
    """One button per package, then one per purchase that may still be refunded, then the
    way back to the main menu (the shop is reachable from it)."""
    kb = InlineKeyboardBuilder()
    for p in packages:
        text = t.plain("credits.package_button", stars=p.stars, credits=p.credits)
        kb.button(text=text, callback_data=ShopCb(action="buy", package=p.id))
    for purchase in refundable:
        text = t.plain(
            "credits.refund_button",
            stars=purchase.stars,
            credits=purchase.credits,
            date=purchase.paid_at.strftime("%Y-%m-%d"),
        )
        kb.button(text=text, callback_data=ShopCb(action="refund", seq=purchase.seq))
    kb.button(text=t.plain("menu.back"), callback_data=MenuCb(action="main"))
    kb.adjust(1)
    return kb.as_markup()


def refund_confirm(t: Translator, seq: int) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(
        text=t.plain("credits.refund_yes"), callback_data=ShopCb(action="refund_yes", seq=seq)
    )
    kb.button(text=t.plain("credits.back"), callback_data=ShopCb(action="open"))
    kb.adjust(1)
    return kb.as_markup()


def back_to_shop(t: Translator) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=t.plain("credits.back"), callback_data=ShopCb(action="open"))
    return kb.as_markup()
