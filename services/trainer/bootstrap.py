"""Wires the trainer: runtime, the FAL gateway, training and generation consumers."""

from __future__ import annotations

import asyncio

from contracts import (
    DescribeRequested,
    GenerationRequested,
    TrainingCancelRequested,
    TrainingRequested,
)
from contracts.jetstream import OBJ_IMAGES, OBJ_PHOTOS, TRAINER_GENERATIONS, TRAINER_REQUESTS
from services.kit.consumer import EventConsumer
from services.kit.runtime import open_runtime
from services.trainer.config import TrainerConfig
from services.trainer.describe import DescribeService
from services.trainer.fal_gateway import FalGateway
from services.trainer.generation import GenerationService
from services.trainer.metrics import TrainerMetrics
from services.trainer.training import TrainingService


async def run(config: TrainerConfig, stop: asyncio.Event) -> None:
    metrics = TrainerMetrics()
    metrics.daily_spend_limit.set(config.daily_spend_limit_usd)
    async with open_runtime(config.common, metrics, db_role="aisha_trainer", stop=stop) as rt:
        fal = FalGateway(config.fal_key, metrics=metrics)
        service = TrainingService(
            pool=rt.pool,
            fal=fal,
            photos=await rt.js.object_store(OBJ_PHOTOS.name),
            config=config,
            metrics=metrics,
        )
        rt.run_consumer(
            EventConsumer(
                rt.js,
                TRAINER_REQUESTS,
                {
                    TrainingRequested: service.on_requested,
                    TrainingCancelRequested: service.on_cancel,
                },
                metrics,
                concurrency=8,
            )
        )
        generations = GenerationService(pool=rt.pool, fal=fal, config=config, metrics=metrics)
        describer = DescribeService(
            pool=rt.pool,
            fal=fal,
            images=await rt.js.object_store(OBJ_IMAGES.name),
            config=config,
            metrics=metrics,
        )
        rt.run_consumer(
            EventConsumer(
                rt.js,
                TRAINER_GENERATIONS,
                {
                    GenerationRequested: generations.on_requested,
                    DescribeRequested: describer.on_describe,
                },
                metrics,
                concurrency=8,
            )
        )
        await rt.start_http()
        await rt.wait()
