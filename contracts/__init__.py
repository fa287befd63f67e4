"""Aisha's shared language: events, subjects and JetStream declarations. No I/O."""

from contracts.avatar import TrainingCancelRequested, TrainingRequested
from contracts.base import (
    Event,
    FailureReason,
    FalPriority,
    TrainingType,
    derived_event_id,
    encode,
    new_event_id,
    utcnow,
)
from contracts.generation import (
    AnimateSource,
    DescribeRequested,
    GeneratedImage,
    GenerationCompleted,
    GenerationFailed,
    GenerationRequested,
    GenerationSubmitted,
    PromptDescribed,
    ReferenceSource,
    UpscaleSource,
)
from contracts.registry import BY_SUBJECT, EVENT_TYPES, dead_letter_subject, decode
from contracts.training import (
    TrainingCancelled,
    TrainingCompleted,
    TrainingFailed,
    TrainingProgress,
    TrainingSubmitted,
    TrainingWaiting,
)

__all__ = [
    "BY_SUBJECT",
    "EVENT_TYPES",
    "AnimateSource",
    "DescribeRequested",
    "Event",
    "FailureReason",
    "FalPriority",
    "GeneratedImage",
    "GenerationCompleted",
    "GenerationFailed",
    "GenerationRequested",
    "GenerationSubmitted",
    "PromptDescribed",
    "ReferenceSource",
    "TrainingCancelRequested",
    "TrainingCancelled",
    "TrainingCompleted",
    "TrainingFailed",
    "TrainingProgress",
    "TrainingRequested",
    "TrainingSubmitted",
    "TrainingType",
    "TrainingWaiting",
    "UpscaleSource",
    "dead_letter_subject",
    "decode",
    "derived_event_id",
    "encode",
    "new_event_id",
    "utcnow",
]
