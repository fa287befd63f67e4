"""Buttons under a training's progress message: cancel while it runs, retry after it failed,
and the answers to a poor likeness check (retrain free, refund, keep)."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

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


def poor_check(t: Translator, avatar_id: UUID, credits: int, redo: bool) -> InlineKeyboardMarkup:
    """The refund's button names its amount: what the user gets is read before the press."""
    kb = InlineKeyboardBuilder()
    if redo:
        kb.button(text=t.plain("check.button_redo"), callback_data=_answer("redo", avatar_id))
    if credits > 0:
        label = t.plain("check.button_refund", credits=credits)
        kb.button(text=label, callback_data=_answer("refund", avatar_id))
    kb.button(text=t.plain("check.button_keep"), callback_data=_answer("keep", avatar_id))
    kb.adjust(1)
    return kb.as_markup()


def _answer(action: Literal["redo", "refund", "keep"], avatar_id: UUID) -> TrainingCb:
    return TrainingCb(action=action, avatar_id=avatar_id)
