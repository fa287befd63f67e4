"""Photo to prompt: a FAL vision model describes the user's reference picture.

The bot stores the picture in the `aisha_images` Object Store and asks; the trainer uploads
it to FAL's storage, runs the captioner through the queue and waits (bounded by
`TRAINER_DESCRIBE_TIMEOUT_SECONDS`, inside the consumer's ack wait), and answers with
`generation.described` through the outbox. The answer is claimed per request id, so a
redelivered request is answered once; a request already answered does not reach FAL again.
A crash between FAL's answer and the commit repeats one caption call (a fraction of a
cent), which is the price of not holding a transaction open across FAL.
"""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import nats.errors
from nats.js.errors import ObjectNotFoundError
from nats.js.object_store import ObjectStore

from contracts import (
    DescribeRequested,
    FailureReason,
    PromptDescribed,
    derived_event_id,
    utcnow,
)
from services.kit.consumer import Delivery
from services.kit.db import UnitOfWork
from services.trainer import lifetimes
from services.trainer.config import TrainerConfig
from services.trainer.fal_gateway import FalGateway, FalRejected, FalRetryable, FalTimeout
from services.trainer.metrics import TrainerMetrics

log = logging.getLogger(__name__)
CONSUMER = "trainer-describe"
CAPTIONER = "fal-ai/florence-2-large/detailed-caption"
MAX_CAPTION_CHARS = 2000
#: The user waits for the caption: give up after a few deliveries (seconds), not minutes.
ATTEMPTS = 3


class NoCaption(Exception):
    """Why there is no caption, as a reason code the bot localizes."""

    def __init__(self, reason: FailureReason, detail: str):
        super().__init__(detail)
        self.reason = reason


@dataclass
class DescribeService:
    pool: asyncpg.Pool
    fal: FalGateway
    images: ObjectStore
    config: TrainerConfig
    metrics: TrainerMetrics

    async def on_describe(self, event: DescribeRequested, delivery: Delivery) -> None:
        marker = derived_event_id("describe", event.request_id)
        if await self._answered(marker):
            self.metrics.describes.labels("duplicate").inc()
            return
        caption: str | None = None
        reason: FailureReason | None = None
        try:
            caption = await self._caption(event)
        except NoCaption as exc:
            reason = exc.reason
            log.warning("no caption for %s: %s", event.request_id, exc)
        except FalRetryable as exc:
            if delivery.number < ATTEMPTS and not delivery.last:
                raise
            reason = FailureReason.FAL_ERROR
            log.warning("no caption for %s: %s", event.request_id, exc)
        async with UnitOfWork(self.pool, "trainer") as uow:
            if not await uow.claim(CONSUMER, marker):
                return
            uow.publish(
                PromptDescribed(
                    event_id=derived_event_id("generation.described", event.request_id),
                    occurred_at=utcnow(),
                    request_id=event.request_id,
                    user_id=event.user_id,
                    avatar_id=event.avatar_id,
                    caption=caption,
                    reason=reason,
                )
            )
        self.metrics.describes.labels("ok" if reason is None else reason.value).inc()

    async def _answered(self, marker: str) -> bool:
        found = await self.pool.fetchval(
            "SELECT 1 FROM processed_events WHERE consumer = $1 AND event_id = $2",
            CONSUMER,
            UUID(marker),
        )
        return found is not None

    async def _caption(self, event: DescribeRequested) -> str:
        try:
            stored = await self.images.get(event.object_name)
        except ObjectNotFoundError:
            raise NoCaption(FailureReason.INTERNAL, "reference picture not stored") from None
        except (nats.errors.Error, TimeoutError) as exc:
            raise FalRetryable(f"object store: {exc}") from exc
        data = stored.data or b""
        if not data:
            raise NoCaption(FailureReason.FAL_REJECTED_INPUT, "reference picture is empty")
        name = event.object_name.rsplit("/", 1)[-1]
        content_type = mimetypes.guess_type(name)[0] or "image/jpeg"
        try:
            url = await self.fal.upload(
                data, content_type, name, lifetime_seconds=lifetimes.REFERENCE_SECONDS
            )
            result = await self.fal.run_queued(
                CAPTIONER, {"image_url": url}, self.config.describe_timeout_seconds
            )
        except FalTimeout as exc:
            raise NoCaption(FailureReason.TIMEOUT, str(exc)) from exc
        except FalRejected as exc:
            raise NoCaption(FailureReason.FAL_REJECTED_INPUT, str(exc)) from exc
        caption = result.get("results")
        if not isinstance(caption, str) or not caption.strip():
            raise NoCaption(FailureReason.FAL_ERROR, "the captioner returned no text")
        return caption.strip()[:MAX_CAPTION_CHARS]
