"""The envelope every event shares: id, time, schema version; JSON on the wire."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

import msgspec

NAMESPACE = uuid.UUID("5c1d0b7e-6a3b-4d8e-9a57-0f6f3a2b9c11")


def new_event_id() -> str:
    """A random id for events that have no natural identity."""
    return str(uuid.uuid4())


def derived_event_id(*parts: object) -> str:
    """A deterministic id, so a retried step publishes the same event and JetStream drops it."""
    return str(uuid.uuid5(NAMESPACE, "/".join(str(p) for p in parts)))


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event: the subject is a class attribute, never a field on the wire."""

    subject: ClassVar[str]
    schema: ClassVar[int] = 1

    event_id: str
    occurred_at: datetime
    version: int = 1


class TrainingType(StrEnum):
    """What the LoRA learns: a person's face (portrait) or a look (style)."""

    PORTRAIT = "portrait"
    STYLE = "style"


class FalPriority(StrEnum):
    """A preset of steps and resolution the user can pick: faster, better, or high-res only."""

    SPEED = "speed"
    QUALITY = "quality"
    HIGH_RES_ONLY = "high_res_only"


class FailureReason(StrEnum):
    """Why a job failed, as a code the bot turns into a localized sentence."""

    FAL_ERROR = "fal_error"
    FAL_REJECTED_INPUT = "fal_rejected_input"
    TIMEOUT = "timeout"
    NOT_ENOUGH_PHOTOS = "not_enough_photos"
    SPEND_LIMIT = "spend_limit"
    NSFW = "nsfw"
    CANCELLED = "cancelled"
    INTERNAL = "internal"
    INSUFFICIENT_CREDITS = "insufficient_credits"

    @property
    def refundable(self) -> bool:
        """Whether the user gets their credits back: not when the failure was theirs (they
        cancelled, sent unusable photos) or nothing was charged."""
        return self not in _NOT_REFUNDED


_NOT_REFUNDED = frozenset(
    {
        FailureReason.NOT_ENOUGH_PHOTOS,
        FailureReason.CANCELLED,
        FailureReason.INSUFFICIENT_CREDITS,
    }
)


_encoder = msgspec.json.Encoder()


def encode(event: Event) -> bytes:
    return _encoder.encode(event)


def to_builtins(event: Event) -> dict[str, Any]:
    result = msgspec.to_builtins(event)
    assert isinstance(result, dict)
    return result
