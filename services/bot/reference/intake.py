"""The reference photo in: the same checks as a training photo, stored like one.

Limits (docs/generation.md, "Reference photos"): at most 20 MB (`MAX_BYTES`, also what the
Bot API lets a bot download) and 64 megapixels (`MAX_PIXELS`, decided from the header, so a
decompression bomb is never decoded); JPEG, PNG, WebP or HEIC; no animation (a GIF, an
animated WebP/PNG, or a Telegram animation). The stored copy is a normalized JPEG no longer
than 1024 px a side — FLUX re-draws at about a megapixel, so the output (and its price)
stays at one block — in the photos bucket as `references/<user>/<id>.jpg`, written before
its `reference_photos` row, so a crash in between leaves only a file the orphan sweep
removes. Nothing is charged here: a refused photo leaves no row, no file and no job.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from dataclasses import dataclass
from uuid import UUID, uuid4

import asyncpg
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiogram.types import Message
from nats.errors import Error as NatsError
from nats.js.object_store import ObjectStore
from PIL import Image, UnidentifiedImageError

from services.bot.app.photo_validation import (
    JPEG_QUALITY,
    MAX_BYTES,
    MAX_PIXELS,
    PhotoRejected,
    Upload,
    ValidPhoto,
    is_image_document,
    validate_photo,
)

log = logging.getLogger(__name__)
PREFIX = "references/"
#: A reference only has to show a pose or a scene.
MIN_SIDE = 256
#: The stored copy's longest side: one megapixel-ish block for FLUX.
STORED_SIDE = 1024

__all__ = ["MAX_BYTES", "MAX_PIXELS", "ReferenceIntake", "StoredReference", "upload_of"]


@dataclass(frozen=True, kw_only=True)
class StoredReference:
    id: UUID
    avatar_id: UUID
    object_name: str
    width: int
    height: int


def object_name(user_id: int, reference_id: UUID) -> str:
    return f"{PREFIX}{user_id}/{reference_id}.jpg"


def upload_of(message: Message) -> Upload:
    """The file to check; PhotoRejected for what cannot be a reference at all."""
    if message.animation is not None:
        raise PhotoRejected("animated")
    if message.photo:
        size = message.photo[-1]
        return Upload(file_id=size.file_id, file_unique_id=size.file_unique_id,
                      file_size=size.file_size)  # fmt: skip
    doc = message.document
    if doc is None or not is_image_document(doc.mime_type, doc.file_name):
        raise PhotoRejected("not_image")
    if (doc.mime_type or "") == "image/gif":
        raise PhotoRejected("animated")
    return Upload(file_id=doc.file_id, file_unique_id=doc.file_unique_id, file_size=doc.file_size)


def check(raw: bytes) -> ValidPhoto:
    """`validate_photo`, after an animation check of its own (a GIF would otherwise be
    "bad format"), shrunk to `STORED_SIDE`. Pure Pillow: run in a worker thread."""
    if len(raw) > MAX_BYTES:
        raise PhotoRejected("too_big_file")
    suppressed = (UnidentifiedImageError, OSError, SyntaxError, ValueError)
    with contextlib.suppress(*suppressed), Image.open(io.BytesIO(raw)) as probe:
        if probe.format == "GIF" or getattr(probe, "is_animated", False):
            raise PhotoRejected("animated")
    photo = validate_photo(raw, min_side=MIN_SIDE)
    if max(photo.width, photo.height) <= STORED_SIDE:
        return photo
    with Image.open(io.BytesIO(photo.data)) as image:
        image.thumbnail((STORED_SIDE, STORED_SIDE), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=JPEG_QUALITY)
        width, height = image.size
    return ValidPhoto(
        data=out.getvalue(), sha256=photo.sha256, width=width, height=height,
        source_format=photo.source_format, size_bytes=photo.size_bytes,
    )  # fmt: skip


class ReferenceIntake:
    def __init__(self, pool: asyncpg.Pool, store: ObjectStore):
        self.pool = pool
        self.store = store

    async def take(
        self, bot: Bot, user_id: int, avatar_id: UUID, upload: Upload
    ) -> StoredReference | None:
        """Download, check, store the file, then the row; None when the avatar is not the
        user's ready one any more (the file is removed again). Raises PhotoRejected."""
        if upload.file_size is not None and upload.file_size > MAX_BYTES:
            raise PhotoRejected("too_big_file")
        try:
            buffer = await bot.download(upload.file_id)
        except (TelegramAPIError, TelegramNetworkError) as exc:
            log.warning("reference download failed: %s", exc)
            raise PhotoRejected("download_failed") from exc
        assert buffer is not None
        photo = await asyncio.to_thread(check, buffer.read())
        reference_id = uuid4()
        name = object_name(user_id, reference_id)
        await self.store.put(name, photo.data)
        inserted = await self.pool.fetchval(
            "INSERT INTO reference_photos (id, user_id, avatar_id, object_name, sha256, "
            "size_bytes, width, height) SELECT $1, $2, a.id, $4, $5, $6, $7, $8 FROM avatars a "
            "WHERE a.id = $3 AND a.user_id = $2 AND a.status = 'completed' RETURNING id",
            reference_id, user_id, avatar_id, name, photo.sha256, photo.size_bytes,
            photo.width, photo.height,
        )  # fmt: skip
        if inserted is None:
            with contextlib.suppress(NatsError):
                await self.store.delete(name)
            return None
        return StoredReference(id=reference_id, avatar_id=avatar_id, object_name=name,
                               width=photo.width, height=photo.height)  # fmt: skip
