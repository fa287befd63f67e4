"""Photo to prompt, the bot's half: keep the reference picture, ask for a description.

The picture is validated like a training photo (a real JPEG/PNG/WebP, bounded size and
pixels), stored normalized as `refs/<request_id>.jpg` in the images bucket, and only then
is `DescribeRequested` written to the outbox, so the backend never gets a key to nothing.
The reference is deleted once the description came back (whether or not the user still
waits for it): it was only needed for that. `/delete_me` deletes the user's references at
once (found through their `DescribeRequested` in the outbox, see `privacy/service.py`), and the
retention sweep deletes any older than an hour (an answer lost, a crash in between).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID, uuid4

import asyncpg
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from nats.errors import Error as NatsError
from nats.js.object_store import ObjectStore

from contracts import DescribeRequested, derived_event_id, utcnow
from services.bot.app.photo_validation import MAX_BYTES, PhotoRejected, Upload, validate_photo
from services.kit.db import UnitOfWork

log = logging.getLogger(__name__)
PRODUCER = "bot"
#: A reference only has to be recognizable, not trainable.
MIN_SIDE = 64


#: Where references live in the images bucket (the status service's results are `gen/...`).
REFERENCE_PREFIX = "refs/"


def reference_name(request_id: str) -> str:
    return f"{REFERENCE_PREFIX}{request_id}.jpg"


class Describer:
    def __init__(self, pool: asyncpg.Pool, store: ObjectStore):
        self.pool = pool
        self.store = store

    async def store_reference(self, bot: Bot, upload: Upload) -> str:
        """Download, validate and store the picture; returns the new request id.
        Raises `PhotoRejected` (with a locale code) for anything unusable."""
        if upload.file_size is not None and upload.file_size > MAX_BYTES:
            raise PhotoRejected("too_big_file")
        try:
            buffer = await bot.download(upload.file_id)
        except (TelegramAPIError, TelegramNetworkError) as exc:
            log.warning("reference download failed: %s", exc)
            raise PhotoRejected("download_failed") from exc
        assert buffer is not None
        photo = await asyncio.to_thread(validate_photo, buffer.read(), min_side=MIN_SIDE)
        request_id = str(uuid4())
        await self.store.put(reference_name(request_id), photo.data)
        return request_id

    async def request(self, user_id: int, avatar_id: UUID | None, request_id: str) -> None:
        """Queue the description request (outbox: published after this commits)."""
        async with UnitOfWork(self.pool, PRODUCER) as uow:
            uow.publish(
                DescribeRequested(
                    event_id=derived_event_id("describe_requested", request_id),
                    occurred_at=utcnow(),
                    request_id=request_id,
                    user_id=user_id,
                    avatar_id=str(avatar_id) if avatar_id else None,
                    object_name=reference_name(request_id),
                )
            )

    async def forget(self, request_id: str) -> None:
        with contextlib.suppress(NatsError):
            await self.store.delete(reference_name(request_id))
