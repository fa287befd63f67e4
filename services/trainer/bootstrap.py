"""Wires the trainer: runtime, the FAL gateway, training and generation consumers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from contracts import (
    DescribeRequested,
    Event,
    GenerationRequested,
    TrainingCancelRequested,
    TrainingRequested,
)
from contracts.jetstream import (
    OBJ_IMAGES,
    OBJ_PHOTOS,
    TRAINER_GENERATIONS,
    TRAINER_REQUESTS,
    ConsumerSpec,
)
from services.kit.consumer import EventConsumer, Handler
from services.kit.runtime import open_runtime
from services.trainer.config import TrainerConfig
from services.trainer.describe import DescribeService
from services.trainer.fal_gateway import FalGateway
from services.trainer.generation_submission import GenerationService
from services.trainer.lora_source import LoraSource
from services.trainer.metrics import TrainerMetrics
from services.trainer.training_submission import TrainingService
from services.trainer.waiting_line import WaitingLine


async def run(config: TrainerConfig, stop: asyncio.Event) -> None:
    metrics = TrainerMetrics()
    metrics.daily_spend_limit.set(config.daily_spend_limit_usd)
    async with open_runtime(config.common, metrics, db_role="aisha_trainer", stop=stop) as rt:
        fal = FalGateway(config.fal_key, metrics=metrics)
        photos = await rt.js.object_store(OBJ_PHOTOS.name)
        images = await rt.js.object_store(OBJ_IMAGES.name)
        trainings = TrainingService(rt.pool, fal, photos, config, metrics)
        generations = GenerationService(
            rt.pool, fal, config, metrics, LoraSource(rt.pool, fal, images), images, photos
        )
        describer = DescribeService(rt.pool, fal, images, config, metrics)
        consumers: list[tuple[ConsumerSpec, Mapping[type[Event], Handler]]] = [
            (
                TRAINER_REQUESTS,
                {
                    TrainingRequested: trainings.on_requested,
                    TrainingCancelRequested: trainings.on_cancel,
                },
            ),
            (
                TRAINER_GENERATIONS,
                {
                    GenerationRequested: generations.on_requested,
                    DescribeRequested: describer.on_describe,
                },
            ),
        ]
        for spec, handlers in consumers:
            rt.run_consumer(EventConsumer(rt.js, spec, handlers, metrics, concurrency=8))
        line = WaitingLine(rt.pool, config.max_concurrent_trainings, config.waiting_line_seconds)
        rt.spawn("waiting-line", line.run(rt.stop))
        await rt.start_http()
        await rt.wait()
