"""Every event type in one place: subject ↔ class, and a decoder for the whole union."""

from __future__ import annotations

import msgspec

from contracts.avatar import TrainingCancelRequested, TrainingRequested
from contracts.base import Event
from contracts.generation import (
    DescribeRequested,
    GenerationCompleted,
    GenerationFailed,
    GenerationRequested,
    GenerationSubmitted,
    PromptDescribed,
)
from contracts.training import (
    TrainingCancelled,
    TrainingCompleted,
    TrainingFailed,
    TrainingProgress,
    TrainingSubmitted,
    TrainingWaiting,
)

EVENT_TYPES: tuple[type[Event], ...] = (
    TrainingRequested,
    TrainingCancelRequested,
    TrainingSubmitted,
    TrainingWaiting,
    TrainingProgress,
    TrainingCompleted,
    TrainingFailed,
    TrainingCancelled,
    GenerationRequested,
    GenerationSubmitted,
    GenerationCompleted,
    GenerationFailed,
    DescribeRequested,
    PromptDescribed,
)

BY_SUBJECT: dict[str, type[Event]] = {cls.subject: cls for cls in EVENT_TYPES}

DLQ_PREFIX = "aisha.dlq"


def dead_letter_subject(subject: str) -> str:
    """Where a poison message on `subject` ends up: `aisha.dlq.<original subject>`."""
    return f"{DLQ_PREFIX}.{subject.removeprefix('aisha.')}"


class UnknownSubject(ValueError):
    """A message arrived on a subject that no contract describes."""


def decode(subject: str, data: bytes) -> Event:
    """Decode strictly by subject; raises msgspec.ValidationError/DecodeError on a bad body."""
    try:
        cls = BY_SUBJECT[subject]
    except KeyError as exc:
        raise UnknownSubject(subject) from exc
    return msgspec.json.decode(data, type=cls)
