"""Callback data of the training controls, by avatar id.

`start` opens the confirmation card (prices, balance, one button per quality preset);
`go_<preset>` starts the training with that preset; `retry` starts the next attempt with
the avatar's preset; `cancel` asks the trainer to stop; `redo`, `refund` and `keep` answer
a poor likeness check (`check.py`). Public: the photo counter (avatars)
and the avatar details screen show the "start training" button; the press is handled here,
in `training/controls.py`.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from aiogram.filters.callback_data import CallbackData

from contracts import FalPriority

#: One action per preset: the preset rides in the action, so the data keeps the three parts
#: (`training:<action>:<id>`) every earlier button had — a Cancel or Retry sent before an
#: upgrade still works after it.
GO_ACTIONS = {f"go_{p.value}": p for p in FalPriority}


class TrainingCb(CallbackData, prefix="training"):
    action: Literal[
        "start",
        "go_speed",
        "go_quality",
        "go_high_res_only",
        "cancel",
        "retry",
        "redo",
        "refund",
        "keep",
    ]
    avatar_id: UUID

    @classmethod
    def go(cls, avatar_id: UUID, priority: FalPriority) -> TrainingCb:
        """The confirmation card's button for one preset."""
        return cls(action=f"go_{priority.value}", avatar_id=avatar_id)  # type: ignore[arg-type]

    @property
    def priority(self) -> FalPriority | None:
        """Only on a `go_<preset>` press: the preset pressed on the confirmation card."""
        return GO_ACTIONS.get(self.action)
