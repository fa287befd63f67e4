"""What the poller's tests share: a training row as the trainer leaves it, a poller over a
recording tracker, and the poll counter by outcome."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from services.status.metrics import StatusMetrics
from services.status.poller import Poller, TokenBucket


async def insert_training(
    admin: asyncpg.Connection, request_id: str, endpoint: str, fal_status: str
) -> uuid.UUID:
    """A user and an avatar whose attempt 1 was submitted as `request_id`, due for a poll."""
    user_id, avatar_id = uuid.uuid4().int % 10**12, uuid.uuid4()
    await admin.execute("INSERT INTO users (id, first_name) VALUES ($1, 'U')", user_id)
    await admin.execute(
        "INSERT INTO avatars (id, user_id, name, gender, status, training_type, trigger_word,"
        " training_attempt, fal_request_id, fal_endpoint, submitted_attempt, submitted_at,"
        " tracked_attempt, fal_status, next_poll_at) VALUES ($1, $2, 'U', 'female',"
        " 'training', 'style', 'ohwx', 1, $3, $4, 1, now(), 1, $5, now())",
        avatar_id,
        user_id,
        request_id,
        endpoint,
        fal_status,
    )
    return avatar_id


def make_poller(pool: Any, fal: Any, tracker: Any, metrics: StatusMetrics) -> Poller:
    return Poller(
        pool=pool,
        fal=fal,
        tracker=tracker,
        webhooks=None,  # type: ignore[arg-type]  # one poll step sweeps no webhooks
        metrics=metrics,
        interval=5.0,
        batch=10,
        budget=TokenBucket(100.0),
    )


def polls(metrics: StatusMetrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("aisha_status_polls_total", {"outcome": outcome})
    return value or 0.0
