"""Buttons under a training's progress message: cancel while it runs, retry after it failed."""

from __future__ import annotations

from uuid import UUID

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.app.main_menu import MenuCb
from services.bot.app.texts import Translator
from services.bot.training.callbacks import TrainingCb


def training_running(t: Translator, avatar_id: UUID) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(
        text=t.plain("training.cancel_button"),
        callback_data=TrainingCb(action="cancel", avatar_id=avatar_id),
    )
    return kb.as_markup()


def training_retry(t: Translator, avatar_id: UUID) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(
        text=t.plain("training.retry_button"),
        callback_data=TrainingCb(action="retry", avatar_id=avatar_id),
    )
    kb.button(text=t.plain("menu.back"), callback_data=MenuCb(action="main"))
    kb.adjust(1)
    return kb.as_markup()
