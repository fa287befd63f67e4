"""Events the bot publishes about an avatar the user wants trained."""

from __future__ import annotations

from typing import ClassVar

from contracts.base import Event, FalPriority, TrainingType


class TrainingRequested(Event, frozen=True, kw_only=True, tag="avatar.training_requested"):
    """The user confirmed training; `attempt` makes each retry a distinct, idempotent job."""

    subject: ClassVar[str] = "aisha.avatar.training_requested"

    avatar_id: str
    user_id: int
    attempt: int
    training_type: TrainingType
    priority: FalPriority
    trigger_word: str
    photo_count: int
    #: Credits the user was quoted; the trainer charges exactly this when it reserves the
    #: FAL submission (0 = free, e.g. an admin's or a test's job).
    credits: int = 0
    #: The free retrain a poor likeness check offered: the trainer trains longer (its
    #: preset adjusted, `services/trainer/presets.py`); the weakest photos were left out.
    redo: bool = False


class TrainingCancelRequested(Event, frozen=True, kw_only=True, tag="avatar.cancel_requested"):
    """The user pressed cancel while the job was queued or running."""

    subject: ClassVar[str] = "aisha.avatar.cancel_requested"

    avatar_id: str
    user_id: int
    attempt: int
