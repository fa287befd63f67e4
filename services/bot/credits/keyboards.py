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
from services.bot.app.pricing import Package, Pricing
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
        text = t.plain("packages.button", name=package_name(t, p), stars=p.stars, credits=p.credits)
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


def package_name(t: Translator, package: Package) -> str:
    """The package's localized name; a package the locales do not know goes by its id."""
    key = f"packages.name_{package.id}"
    return t.plain(key) if t.has(key) else package.id.replace("_", " ").capitalize()


def package_line(t: Translator, package: Package, pricing: Pricing) -> str:
    """What a package buys, in trainings (the quality preset) and in pictures."""
    return t(
        "packages.line",
        name=package_name(t, package),
        credits=package.credits,
        stars=package.stars,
        trainings=package.credits // pricing.training if pricing.training else "∞",
        pictures=package.credits // pricing.per_image if pricing.per_image else "∞",
    )


def refund_confirm(t: Translator, seq: int) -> InlineKeyboardMarkup:
    return keyboard(
        t,
        ("credits.refund_yes", ShopCb(action="refund_yes", seq=seq)),
        ("credits.back", ShopCb(action="open")),
        rows=(1,),
    )


def back_to_shop(t: Translator) -> InlineKeyboardMarkup:
    return keyboard(t, ("credits.back", ShopCb(action="open")))
