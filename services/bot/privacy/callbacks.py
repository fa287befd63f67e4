"""Callback data of `/delete_me` and of the per-avatar "keep my photos" toggle.

`PrivacyCb` carries no id at all: erasure always applies to whoever pressed the button, so a
forged or forwarded button can only ever erase the presser's own data. Public: the avatar
details screen shows `keep_photos_button`.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from aiogram.filters.callback_data import CallbackData

from services.bot.app.texts import Translator


class PrivacyCb(CallbackData, prefix="privacy"):
    action: Literal["erase", "abort"]


class KeepPhotosCb(CallbackData, prefix="keep"):
    """Sets (not flips) the choice, so a double press cannot undo itself."""

    avatar_id: UUID
    keep: bool


def keep_photos_button(t: Translator, avatar_id: UUID, keep: bool) -> tuple[str, KeepPhotosCb]:
    """The toggle as (label, data): the label shows the current choice, pressing sets the other."""
    label = t.plain("privacy.keep_on" if keep else "privacy.keep_off")
    return label, KeepPhotosCb(avatar_id=avatar_id, keep=not keep)
