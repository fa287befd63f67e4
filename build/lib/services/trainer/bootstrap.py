"""Wires the trainer: runtime resources, the FAL gateway and the request consumer."""

from __future__ import annotations

import asyncio

from contracts import TrainingCancelRequested, TrainingRequested
from contracts.jetstream import OBJ_PHOTOS, TRAINER_REQUESTS
from services.kit.consumer import EventConsumer
from services.kit.runtime import open_runtime
from services.trainer.config import TrainerConfig
from services.trainer.fal_gateway import FalGateway
from services.trainer.metrics import TrainerMetrics
from services.trainer.training import TrainingService


async def run(config: TrainerConfig, stop: asyncio.Event) -> None:
    metrics = TrainerMetrics()
    async with open_runtime(config.common, metrics, db_role="aisha_trainer", stop=stop) as rt:
        service = TrainingService(
            pool=rt.pool,
            fal=FalGateway(config.fal_key),
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
        await rt.start_http()
        await rt.wait()
