"""Declarations of streams, durable consumers, KV and Object Store buckets. No I/O here.

The kit's provisioning turns these into server objects idempotently at service start.
"""

from __future__ import annotations

import msgspec


class StreamSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    subjects: tuple[str, ...]
    max_age_seconds: int = 14 * 24 * 3600
    duplicate_window_seconds: int = 2 * 3600
    replicas: int = 1


class ConsumerSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A durable pull consumer: one per (service, filter), shared by that service's replicas."""

    durable: str
    stream: str
    filter_subjects: tuple[str, ...]
    max_deliver: int = 8
    # The kit's consumer heartbeats (`in_progress`) while a handler runs, so ack_wait only
    # bounds how long a crashed replica holds a message: keep it short.
    ack_wait_seconds: float = 15.0
    max_ack_pending: int = 256
    backoff_seconds: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0)


class BucketSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    ttl_seconds: int | None = None
    replicas: int = 1
    description: str = ""


STREAM_AVATAR = StreamSpec(name="AISHA_AVATAR", subjects=("aisha.avatar.>",))
STREAM_TRAINING = StreamSpec(name="AISHA_TRAINING", subjects=("aisha.training.>",))
STREAM_GENERATION = StreamSpec(name="AISHA_GENERATION", subjects=("aisha.generation.>",))
STREAM_DLQ = StreamSpec(name="AISHA_DLQ", subjects=("aisha.dlq.>",), max_age_seconds=30 * 24 * 3600)
STREAMS: tuple[StreamSpec, ...] = (STREAM_AVATAR, STREAM_TRAINING, STREAM_GENERATION, STREAM_DLQ)

TRAINER_REQUESTS = ConsumerSpec(
    durable="trainer-avatar",
    stream=STREAM_AVATAR.name,
    filter_subjects=("aisha.avatar.training_requested", "aisha.avatar.cancel_requested"),
    ack_wait_seconds=15.0,
    # Waiting for the webhook of a job orphaned by a crash (TRAINER_RECONCILE_MINUTES, 90
    # by default) naks the request: 110 deliveries with this backoff are ~105 minutes.
    # Waiting for a free training slot does not: it is a row in the ledger (`waiting`).
    max_deliver=110,
    backoff_seconds=(2.0, 5.0, 10.0, 30.0, 60.0),
)
TRAINER_GENERATIONS = ConsumerSpec(
    durable="trainer-generation",
    stream=STREAM_GENERATION.name,
    filter_subjects=("aisha.generation.requested", "aisha.generation.describe_requested"),
    ack_wait_seconds=60.0,
)
STATUS_TRAININGS = ConsumerSpec(
    durable="status-training",
    stream=STREAM_TRAINING.name,
    filter_subjects=("aisha.training.submitted", "aisha.training.cancelled"),
)
STATUS_GENERATIONS = ConsumerSpec(
    durable="status-generation",
    stream=STREAM_GENERATION.name,
    filter_subjects=("aisha.generation.submitted",),
)
BOT_TRAINING = ConsumerSpec(
    durable="bot-training",
    stream=STREAM_TRAINING.name,
    filter_subjects=(
        "aisha.training.submitted",
        "aisha.training.waiting",
        "aisha.training.progress",
        "aisha.training.completed",
        "aisha.training.failed",
        "aisha.training.cancelled",
    ),
)
BOT_GENERATION = ConsumerSpec(
    durable="bot-generation",
    stream=STREAM_GENERATION.name,
    filter_subjects=(
        "aisha.generation.submitted",
        "aisha.generation.completed",
        "aisha.generation.failed",
        "aisha.generation.described",
    ),
)
CONSUMERS: tuple[ConsumerSpec, ...] = (
    TRAINER_REQUESTS,
    TRAINER_GENERATIONS,
    STATUS_TRAININGS,
    STATUS_GENERATIONS,
    BOT_TRAINING,
    BOT_GENERATION,
)

KV_FSM = BucketSpec(name="aisha_fsm", description="aiogram FSM state and data, shared by replicas.")
KV_BUCKETS: tuple[BucketSpec, ...] = (KV_FSM,)

OBJ_PHOTOS = BucketSpec(name="aisha_photos", description="Validated training photos.")
OBJ_IMAGES = BucketSpec(name="aisha_images", description="Generated images fetched from FAL.")
OBJECT_BUCKETS: tuple[BucketSpec, ...] = (OBJ_PHOTOS, OBJ_IMAGES)
