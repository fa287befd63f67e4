"""Keyboards of `/delete_me` and the per-avatar "keep my photos" toggle.

`PrivacyCb` carries no id at all: erasure always applies to whoever pressed the button, so a
forged or forwarded button can only ever erase the presser's own data.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.texts import Translator


class PrivacyCb(CallbackData, prefix="privacy"):
    action: Literal["erase", "abort"]


class KeepPhotosCb(CallbackData, prefix="keep"):
    """Sets (not flips) the choice, so a double press cannot undo itself."""

    avatar_id: UUID
    keep: bool


def erase_confirm(t: Translator) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=t.plain("privacy.erase_yes"), callback_data=PrivacyCb(action="erase"))
    kb.button(text=t.plain("privacy.erase_no"), callback_data=PrivacyCb(action="abort"))
    kb.adjust(1)
    return kb.as_markup()


def keep_photos_button(t: Translator, avatar_id: UUID, keep: bool) -> tuple[str, KeepPhotosCb]:
    """The toggle as (label, data): the label shows the current choice, pressing sets the other."""
    label = t.plain("privacy.keep_on" if keep else "privacy.keep_off")
    return label, KeepPhotosCb(avatar_id=avatar_id, keep=not keep)
