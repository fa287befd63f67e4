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


class TrainingWaiting(Event, frozen=True, kw_only=True, tag="training.waiting"):
    """Our own line: the request waits for a training slot (`TRAINER_MAX_CONCURRENT`),
    with `ahead` requests before it; never failed for waiting (FAL's queue is separate)."""

    subject: ClassVar[str] = "aisha.training.waiting"

    avatar_id: str
    user_id: int
    attempt: int
    ahead: int


class TrainingProgress(Event, frozen=True, kw_only=True, tag="training.progress"):
    """FAL's queue position while IN_QUEUE, then percent done: read from a log line that
    plainly carries it, or else `estimated` from elapsed time and the typical duration of
    this endpoint and step count (never above 95 before the end). Added fields (optional,
    defaults keep older readers and writers valid): `estimated`."""

    subject: ClassVar[str] = "aisha.training.progress"

    avatar_id: str
    user_id: int
    attempt: int
    request_id: str
    fal_status: str
    progress: int
    queue_position: int | None = None
    eta_seconds: int | None = None
    estimated: bool = False


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
