"""Keyboards of upscaling: the factor choice with prices, and the gallery under a result."""

from __future__ import annotations

from uuid import UUID

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.app.texts import Translator
from services.bot.gallery.callbacks import GalleryCb, ImageCb
from services.bot.upscale.callbacks import UpscaleCb


def choice(t: Translator, image_id: UUID, prices: dict[int, int]) -> InlineKeyboardMarkup:
    """×2 and ×4 with their prices; back restores the picture's own buttons."""
    kb = InlineKeyboardBuilder()
    for factor, price in prices.items():
        kb.button(
            text=t.plain("upscale.factor_button", factor=factor, price=price),
            callback_data=UpscaleCb(action="go", image_id=image_id, factor=factor),
        )
    kb.button(
        text=t.plain("upscale.back"), callback_data=ImageCb(action="del_no", image_id=image_id)
    )
    kb.adjust(len(prices), 1)
    return kb.as_markup()


def result(t: Translator) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=t.plain("upscale.gallery_button"), callback_data=GalleryCb())
    return kb.as_markup()
