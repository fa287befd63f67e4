"""Callback data of the training controls, by avatar id.

`start` opens the confirmation card (prices, balance, one button per quality preset);
`go` starts the training with the preset it carries; `retry` starts the next attempt with
the avatar's preset; `cancel` asks the trainer to stop. Public: the photo counter (avatars)
and the avatar details screen show the "start training" button; the press is handled here,
in `training/controls.py`.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from aiogram.filters.callback_data import CallbackData

from contracts import FalPriority


class TrainingCb(CallbackData, prefix="training"):
    action: Literal["start", "go", "cancel", "retry"]
    avatar_id: UUID
    #: Only on `go`: the preset pressed on the confirmation card.
    priority: FalPriority | None = None
