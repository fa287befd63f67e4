"""Events of a training job's life at FAL, published by the trainer and the status service."""

from __future__ import annotations

from typing import ClassVar

from contracts.base import Event, FailureReason, TrainingType


class TrainingSubmitted(Event, frozen=True, kw_only=True, tag="training.submitted"):
    """FAL accepted the job; status starts tracking `request_id`."""

    subject: ClassVar[str] = "aisha.training.submitted"

    avatar_id: str
    user_id: int
    attempt: int
    training_type: TrainingType
    request_id: str
    endpoint: str


class TrainingProgress(Event, frozen=True, kw_only=True, tag="training.progress"):
    """Queue position or percent done; the bot edits one progress message from these."""

    subject: ClassVar[str] = "aisha.training.progress"

    avatar_id: str
    user_id: int
    attempt: int
    request_id: str
    fal_status: str
    progress: int
    queue_position: int | None = None
    eta_seconds: int | None = None


class TrainingCompleted(Event, frozen=True, kw_only=True, tag="training.completed"):
    """The LoRA exists; the avatar is ready for generation."""

    subject: ClassVar[str] = "aisha.training.completed"

    avatar_id: str
    user_id: int
    attempt: int
    request_id: str
    lora_url: str
    config_url: str | None = None


class TrainingFailed(Event, frozen=True, kw_only=True, tag="training.failed"):
    """The attempt ended without a LoRA; `reason` is a code the bot localizes."""

    subject: ClassVar[str] = "aisha.training.failed"

    avatar_id: str
    user_id: int
    attempt: int
    reason: FailureReason
    retryable: bool
    request_id: str | None = None
    detail: str | None = None


class TrainingCancelled(Event, frozen=True, kw_only=True, tag="training.cancelled"):
    """The job was cancelled at FAL (or never submitted) after the user asked."""

    subject: ClassVar[str] = "aisha.training.cancelled"

    avatar_id: str
    user_id: int
    attempt: int
    request_id: str | None = None
