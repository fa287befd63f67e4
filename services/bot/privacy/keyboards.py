"""The `/delete_me` confirmation keyboard (its data, `PrivacyCb`, is in `callbacks.py`)."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup

from services.bot.app.keyboards import keyboard
from services.bot.app.texts import Translator
from services.bot.privacy.callbacks import PrivacyCb


def erase_confirm(t: Translator) -> InlineKeyboardMarkup:
    return keyboard(
        t,
        ("privacy.erase_yes", PrivacyCb(action="erase")),
        ("privacy.erase_no", PrivacyCb(action="abort")),
        rows=(1,),
    )
