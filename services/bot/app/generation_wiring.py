"""Composition of the generation features (kept out of `bootstrap.py`, which only calls
`wire_generation` and passes the result to the dispatcher as handler arguments)."""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.fsm.storage.base import BaseStorage

from contracts.jetstream import BOT_GENERATION, OBJ_IMAGES, OBJ_PHOTOS
from services.bot.animate.outcomes import AnimationOutcomes
from services.bot.animate.service import AnimationService
from services.bot.app.config import BotConfig
from services.bot.app.metrics import BotMetrics
from services.bot.app.sender import Sender
from services.bot.app.texts import Texts
from services.bot.avatars.likeness_scorer import LikenessScorer
from services.bot.avatars.photo_gate import PhotoGate
from services.bot.avatars.service import AvatarService
from services.bot.gallery.export import Exporter
from services.bot.gallery.service import ImageService
from services.bot.generation.delivery import ResultDelivery
from services.bot.generation.describer import Describer
from services.bot.generation.events import GenerationEvents
from services.bot.generation.likeness_retry import LikenessRetry
from services.bot.generation.prompts import Catalogue
from services.bot.generation.service import GenerationService
from services.bot.packs.catalogue import PackCatalogue
from services.bot.packs.service import PackOrders
from services.bot.reference.intake import ReferenceIntake
from services.bot.reference.outcomes import ReferenceOutcomes
from services.bot.reference.service import ReferenceService
from services.bot.training.check import TrainingCheck
from services.bot.training.check_delivery import CheckDelivery
from services.bot.upscale.outcomes import UpscaleOutcomes
from services.bot.upscale.service import UpscaleService
from services.kit.consumer import EventConsumer
from services.kit.runtime import Runtime


async def wire_generation(
    rt: Runtime,
    config: BotConfig,
    bot: Bot,
    *,
    avatars: AvatarService,
    sender: Sender,
    texts: Texts,
    storage: BaseStorage,
    checks: TrainingCheck,
    gate: PhotoGate | None = None,
) -> dict[str, Any]:
    """Services for the generation, gallery, share and inline handlers (by parameter name),
    and the `BOT_GENERATION` consumer running on the runtime."""
    styles = Catalogue.load()
    image_store = await rt.js.object_store(OBJ_IMAGES.name)
    generations = GenerationService(
        rt.pool,
        max_active=config.max_concurrent_generations,
        credits_per_image=config.pricing.per_image,
    )
    images = ImageService(rt.pool)
    describer = Describer(rt.pool, image_store)
    metrics = rt.metrics if isinstance(rt.metrics, BotMetrics) else None
    likeness = retry = None
    if gate is not None:
        timeout = config.likeness_timeout_seconds
        likeness = LikenessScorer(rt.pool, gate, timeout=timeout, metrics=metrics)
        if config.likeness_retry:
            retry = LikenessRetry(rt.pool, sender, metrics)
    events = GenerationEvents(
        generations,
        avatars,
        ResultDelivery(images, image_store, sender, styles, likeness, retry),
        describer,
        sender,
        texts,
        storage,
        bot.id,
        metrics,
        kinds={
            "upscale": UpscaleOutcomes(images, image_store, sender),
            "reference": ReferenceOutcomes(images, image_store, sender),
            "animation": AnimationOutcomes(images, image_store, sender),
            "check": CheckDelivery(avatars, checks, images, image_store, sender, likeness),
        },
    )
    rt.run_consumer(EventConsumer(rt.js, BOT_GENERATION, events.handlers(), rt.metrics))
    return {
        "styles": styles,
        "packs": PackCatalogue.load(styles),
        "pack_orders": PackOrders(rt.pool, config.pricing.per_image),
        "image_store": image_store,
        "generations": generations,
        "images": images,
        "describer": describer,
        "exporter": Exporter(images, image_store),
        "references": ReferenceService(rt.pool, config.pricing, config.max_concurrent_generations),
        "reference_intake": ReferenceIntake(rt.pool, await rt.js.object_store(OBJ_PHOTOS.name)),
        "upscales": UpscaleService(
            rt.pool, config.pricing, images, image_store, config.max_concurrent_generations
        ),
        "animations": AnimationService(
            rt.pool, config.pricing, images, config.max_concurrent_generations
        ),
    }
