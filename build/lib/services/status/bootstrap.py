"""Wires the status service: webhook route, tracker, poller and the submitted consumer."""

from __future__ import annotations

import asyncio

import fal_client

from contracts import TrainingCancelled, TrainingSubmitted
from contracts.jetstream import KV_TRAINING_STATUS, STATUS_TRAININGS
from services.kit.consumer import EventConsumer
from services.kit.runtime import open_runtime
from services.status.config import StatusConfig
from services.status.metrics import StatusMetrics
from services.status.poller import Poller, TokenBucket
from services.status.signature import JwksVerifier
from services.status.tracking import Tracker
from services.status.webhooks import WebhookReceiver


async def run(config: StatusConfig, stop: asyncio.Event) -> None:
    metrics = StatusMetrics()
    verifier = JwksVerifier(config.jwks_url, config.webhook_tolerance_seconds)
    async with open_runtime(config.common, metrics, db_role="aisha_status", stop=stop) as rt:
        tracker = Tracker(rt.pool, await rt.js.key_value(KV_TRAINING_STATUS.name), metrics)
        receiver = WebhookReceiver(rt.pool, verifier, tracker, metrics, config.webhook_max_bytes)
        poller = Poller(
            pool=rt.pool,
            fal=fal_client.AsyncClient(key=config.fal_key),
            tracker=tracker,
            webhooks=receiver,
            metrics=metrics,
            interval=config.poll_interval_seconds,
            batch=config.poll_batch,
            budget=TokenBucket(config.fal_requests_per_second),
        )
        rt.run_consumer(
            EventConsumer(
                rt.js,
                STATUS_TRAININGS,
                {TrainingSubmitted: tracker.on_submitted, TrainingCancelled: tracker.on_cancelled},
                metrics,
            )
        )
        rt.spawn("poller", poller.run(stop))
        await rt.start_http(receiver.routes(), client_max_size=config.webhook_max_bytes + 1024)
        try:
            await rt.wait()
        finally:
            await verifier.close()
