"""The `/delete_me` confirmation keyboard (its data, `PrivacyCb`, is in `callbacks.py`)."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.app.texts import Translator
from services.bot.privacy.callbacks import PrivacyCb


def erase_confirm(t: Translator) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=t.plain("privacy.erase_yes"), callback_data=PrivacyCb(action="erase"))
    kb.button(text=t.plain("privacy.erase_no"), callback_data=PrivacyCb(action="abort"))
    kb.adjust(1)
    return kb.as_markup()
