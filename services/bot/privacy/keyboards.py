"""Keyboards of `/delete_me` and the per-avatar "keep my photos" toggle.

`PrivacyCb` carries no id at all: erasure always applies to whoever pressed the button, so a
forged or forwarded button can only ever erase the presser's own data.
"""

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
