"""Wires the status service: webhook route, tracker, poller and the submitted consumer."""

from __future__ import annotations

import asyncio

from contracts import GenerationSubmitted, TrainingCancelled, TrainingSubmitted
from contracts.jetstream import (
    OBJ_IMAGES,
    STATUS_GENERATIONS,
    STATUS_TRAININGS,
)
from services.kit.consumer import EventConsumer
from services.kit.falmetrics import ObservedFalClient
from services.kit.outbox import OutboxShortcut
from services.kit.runtime import open_runtime
from services.status.config import StatusConfig
from services.status.generation_tracking import GenerationTracker
from services.status.images import ImageStore
from services.status.inflight import InFlightGauges
from services.status.keeping import TrainingFiles
from services.status.metrics import StatusMetrics
from services.status.poller import Poller, TokenBucket
from services.status.retention import WebhookRetention
from services.status.signature import JwksVerifier
from services.status.training_tracking import Tracker
from services.status.webhooks import WebhookReceiver


async def run(config: StatusConfig, stop: asyncio.Event) -> None:
    metrics = StatusMetrics()
    verifier = JwksVerifier(
        config.jwks_url, config.webhook_tolerance_seconds, fetches=metrics.jwks_fetches
    )
    async with open_runtime(config.common, metrics, db_role="aisha_status", stop=stop) as rt:
        shortcut = OutboxShortcut(rt.pool, rt.js, metrics)
        rt.spawn("outbox-shortcut", shortcut.run(stop))
        tracker = Tracker(rt.pool, metrics, shortcut)
        images = ImageStore(
            await rt.js.object_store(OBJ_IMAGES.name),
            metrics,
            attempts=config.image_fetch_attempts,
            timeout_seconds=config.image_fetch_timeout_seconds,
        )
        generations = GenerationTracker(rt.pool, images, metrics)
        receiver = WebhookReceiver(
            rt.pool,
            verifier,
            tracker,
            metrics,
            config.webhook_max_bytes,
            generations,
            config.webhook_read_timeout_seconds,
        )
        fal = ObservedFalClient(config.fal_key, metrics.fal_requests, metrics.fal_seconds)
        budget = TokenBucket(config.fal_requests_per_second)  # one FAL budget per replica
        poller = Poller(
            pool=rt.pool,
            fal=fal,
            tracker=tracker,
            webhooks=receiver,
            metrics=metrics,
            interval=config.poll_interval_seconds,
            batch=config.poll_batch,
            budget=budget,
            generations=generations,
        )
        files = TrainingFiles(
            rt.pool, images, fal, budget, metrics, interval=config.poll_interval_seconds
        )
        rt.run_consumer(
            EventConsumer(
                rt.js,
                STATUS_TRAININGS,
                {TrainingSubmitted: tracker.on_submitted, TrainingCancelled: tracker.on_cancelled},
                metrics,
            )
        )
        rt.run_consumer(
            EventConsumer(
                rt.js,
                STATUS_GENERATIONS,
                {GenerationSubmitted: generations.on_submitted},
                metrics,
            )
        )
        rt.spawn("poller", poller.run(stop))
        rt.spawn("training-files", files.run(stop))
        rt.spawn("in-flight", InFlightGauges(rt.pool, metrics).run(stop))
        pruner = WebhookRetention(rt.pool, retention_hours=config.webhook_retention_hours)
        rt.spawn("webhook-retention", pruner.run(stop))
        await rt.start_http(receiver.routes(), client_max_size=config.webhook_max_bytes + 1024)
        try:
            await rt.wait()
        finally:
            await receiver.drain(config.common.shutdown_grace_seconds)
            await images.close()
            await verifier.close()
