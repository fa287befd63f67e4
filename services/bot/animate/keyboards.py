"""Keyboards of animation: the offer (start without a motion prompt, cancel) and the gallery
under a result."""

from __future__ import annotations

from uuid import UUID

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.animate.callbacks import AnimateCb
from services.bot.app.texts import Translator
from services.bot.gallery.callbacks import GalleryCb


def offer(t: Translator, image_id: UUID, price: int) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(
        text=t.plain("animate.skip_button", price=price),
        callback_data=AnimateCb(action="go", image_id=image_id),
    )
    kb.button(
        text=t.plain("animate.cancel_button"),
        callback_data=AnimateCb(action="cancel", image_id=image_id),
    )
    kb.adjust(1)
    return kb.as_markup()


def result(t: Translator) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=t.plain("animate.gallery_button"), callback_data=GalleryCb())
    return kb.as_markup()
