"""PLACEHOLDER"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from aiogram.filters.callback_data import CallbackData


class TrainingCb(CallbackData, prefix="training"):
    action: Literal["start", "cancel", "retry"]
    avatar_id: UUID
