"""Keyboards of reference photos: waiting for the photo, the strengths with the price, and
the buttons under a result."""

from __future__ import annotations

from uuid import UUID

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.app.main_menu import MenuCb
from services.bot.app.texts import Translator
from services.bot.gallery.callbacks import GalleryCb
from services.bot.reference.callbacks import RefCb
from services.bot.reference.strengths import STRENGTHS


def waiting(t: Translator) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=t.plain("reference.cancel"), callback_data=MenuCb(action="main"))
    return kb.as_markup()


def strengths(t: Translator, reference_id: UUID, price: int) -> InlineKeyboardMarkup:
    """One button per strength, each with the price (the same for all three)."""
    kb = InlineKeyboardBuilder()
    for step in STRENGTHS:
        kb.button(
            text=t.plain(f"reference.step_{step}", price=price),
            callback_data=RefCb(action="go", id=reference_id, step=step),
        )
    kb.button(text=t.plain("reference.cancel"), callback_data=MenuCb(action="main"))
    kb.adjust(1)
    return kb.as_markup()


def result(t: Translator, reference_id: UUID | None) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    if reference_id is not None:
        kb.button(
            text=t.plain("reference.again"),
            callback_data=RefCb(action="menu", id=reference_id),
        )
    kb.button(text=t.plain("reference.gallery"), callback_data=GalleryCb())
    kb.adjust(1)
    return kb.as_markup()
