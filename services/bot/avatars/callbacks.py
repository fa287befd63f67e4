"""Callback data of avatar creation and "my avatars".

Only ids and short codes: the rest is looked up (and ownership checked)."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from aiogram.filters.callback_data import CallbackData

from contracts import TrainingType
from services.bot.app.models import Gender


class GenderCb(CallbackData, prefix="gender"):
    value: Gender


class TrainingTypeCb(CallbackData, prefix="training_type"):
    """`pick` chooses at once (one click); `info` shows details with a confirm button."""

    action: Literal["pick", "info", "back"]
    value: TrainingType


class AvatarCb(CallbackData, prefix="avatar"):
    action: Literal["view", "rename", "delete", "delete_yes", "main", "photos"]
    avatar_id: UUID
