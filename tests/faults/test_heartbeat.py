"""`ack_wait` bounds a dead consumer, not a slow one: the loop heartbeats while it works.

With a 1 s `ack_wait`, a handler that takes 3 s is not redelivered behind its back (the
heartbeat keeps the message in progress). That a message held by a killed process comes
back after `ack_wait` is shown at process level by `test_crashpoints.py`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.js import JetStreamContext, api

from contracts import FalPriority, TrainingRequested, TrainingType, encode, new_event_id, utcnow
from contracts.jetstream import STREAM_AVATAR, ConsumerSpec
from services.kit.broker import consumer_config, provision
from services.kit.consumer import Delivery, EventConsumer
from services.kit.metrics import KitMetrics

pytestmark = pytest.mark.faults


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    context = nc.jetstream()
    await provision(context, consumers=[], kv=[], objects=[])
    yield context
    await nc.drain()


@pytest.fixture
async def spec(js: JetStreamContext) -> AsyncIterator[ConsumerSpec]:
    consumer = ConsumerSpec(
        durable=f"heartbeat-{uuid.uuid4().hex[:10]}",
        stream=STREAM_AVATAR.name,
        filter_subjects=(TrainingRequested.subject,),
        ack_wait_seconds=1.0,
        max_deliver=5,
    )
    config = consumer_config(consumer)
    config.deliver_policy = api.DeliverPolicy.NEW
    await js.add_consumer(consumer.stream, config)
    yield consumer
    await js.delete_consumer(consumer.stream, consumer.durable)


async def publish(js: JetStreamContext) -> None:
    event = TrainingRequested(
        event_id=new_event_id(),
        occurred_at=utcnow(),
        avatar_id=str(uuid.uuid4()),
        user_id=1,
        attempt=1,
        training_type=TrainingType.STYLE,
        priority=FalPriority.SPEED,
        trigger_word="tok",
        photo_count=10,
    )
    await js.publish(event.subject, encode(event))


async def test_a_slow_handler_is_not_redelivered_behind_its_back(js, spec) -> None:
    calls: list[int] = []

    async def slow(_: TrainingRequested, delivery: Delivery) -> None:
        calls.append(delivery.number)
        await asyncio.sleep(3.0)

    stop = asyncio.Event()
    handlers = {TrainingRequested: slow}
    consumer = EventConsumer(js, spec, handlers, KitMetrics("hb"), fetch_timeout=0.2)
    task = asyncio.create_task(consumer.run(stop))
    await publish(js)
    await asyncio.sleep(4.5)
    stop.set()
    await asyncio.wait_for(task, 10)
    info = await js.consumer_info(spec.stream, spec.durable)
    assert calls == [1]
    assert info.num_ack_pending == 0
    assert info.num_redelivered == 0
