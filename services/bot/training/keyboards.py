"""Buttons under a training's progress message: cancel while it runs, retry after it failed."""

from __future__ import annotations

from uuid import UUID

from aiogram.types import InlineKeyboardMarkup

from services.bot.app.keyboards import keyboard
from services.bot.app.main_menu import MenuCb
from services.bot.app.texts import Translator
from services.bot.training.callbacks import TrainingCb


def training_running(t: Translator, avatar_id: UUID) -> InlineKeyboardMarkup:
    return keyboard(t, ("training.cancel_button", TrainingCb(action="cancel", avatar_id=avatar_id)))


def training_retry(t: Translator, avatar_id: UUID) -> InlineKeyboardMarkup:
    return keyboard(
        t,
        ("training.retry_button", TrainingCb(action="retry", avatar_id=avatar_id)),
        ("menu.back", MenuCb(action="main")),
        rows=(1,),
    )
