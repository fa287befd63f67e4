"""Callback data of the training controls (start, cancel, retry), by avatar id.

Public: the photo counter (avatars) and the avatar details screen show the "start training"
button; the press is handled here, in `training/controls.py`.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from aiogram.filters.callback_data import CallbackData


class TrainingCb(CallbackData, prefix="training"):
    action: Literal["start", "cancel", "retry"]
    avatar_id: UUID
