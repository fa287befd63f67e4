"""Buttons of the credits shop: ids only; prices are looked up from config on press.

A refund button carries the purchase's ledger `seq` (a small per-user number, checked
against the presser's own purchases), never Telegram's long charge id or an amount. The
callback data (`ShopCb`) and the "top up" button other features show are in `callbacks.py`.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.app.keyboards import keyboard
from services.bot.app.main_menu import MenuCb
from services.bot.app.pricing import Package
from services.bot.app.texts import Translator
from services.bot.credits.callbacks import ShopCb
from services.bot.credits.refunds import Purchase


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
    return keyboard(
        t,
        ("credits.refund_yes", ShopCb(action="refund_yes", seq=seq)),
        ("credits.back", ShopCb(action="open")),
        rows=(1,),
    )


def back_to_shop(t: Translator) -> InlineKeyboardMarkup:
    return keyboard(t, ("credits.back", ShopCb(action="open")))
