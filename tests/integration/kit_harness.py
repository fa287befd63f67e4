"""What the kit's consumer and outbox tests share: a NATS connection with the contracts'
streams provisioned (fixtures `nc`, `js`; import them into the module by name), a sample
event, and bounded waiting."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from contracts.avatar import TrainingRequested
from contracts.base import FalPriority, TrainingType, new_event_id, utcnow
from contracts.jetstream import STREAMS
from services.kit.broker import provision

SUBJECT = TrainingRequested.subject


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], within: float = 5.0, interval: float = 0.02
) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(interval)


def training_requested(**overrides: Any) -> TrainingRequested:
    fields: dict[str, Any] = {
        "event_id": new_event_id(),
        "occurred_at": utcnow(),
        "avatar_id": str(uuid.uuid4()),
        "user_id": 42,
        "attempt": 1,
        "training_type": TrainingType.PORTRAIT,
        "priority": FalPriority.QUALITY,
        "trigger_word": "ohwx",
        "photo_count": 12,
    }
    fields.update(overrides)
    return TrainingRequested(**fields)


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
async def js(nc: NATS) -> JetStreamContext:
    """JetStream with the contracts' streams (no consumers, buckets) provisioned."""
    context = nc.jetstream()
    await provision(context, streams=STREAMS, consumers=[], kv=[], objects=[])
    return context
