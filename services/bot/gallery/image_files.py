"""Getting a stored picture to Telegram: by `file_id` when Telegram already has it (free and
instant), from the object store otherwise — and when a kept `file_id` stopped working."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message
from nats.js.errors import NotFoundError
from nats.js.object_store import ObjectStore

from contracts import GeneratedImage
from services.bot.gallery.service import ImageItem, ImageService

log = logging.getLogger(__name__)


async def load(store: ObjectStore, name: str) -> bytes | None:
    """The object's bytes, or None when it is gone (deleted, or never stored)."""
    try:
        result = await store.get(name)
    except NotFoundError:
        log.warning("image object %s is missing", name)
        return None
    return bytes(result.data or b"")


@dataclass(frozen=True)
class Shown:
    """A finished job's picture that can be shown: its row and its bytes."""

    item: ImageItem
    data: bytes


async def showable(
    images: ImageService,
    store: ObjectStore,
    generation_id: UUID,
    results: Sequence[GeneratedImage],
) -> tuple[list[Shown], int, int]:
    """A finished generation's pictures to send (in the backend's order), how many were
    withheld as NSFW and how many could not be found (no row or no stored object)."""
    rows = {item.object_name: item for item in await images.of_generation(generation_id)}
    shown: list[Shown] = []
    withheld = missing = 0
    for result in results:
        row = rows.get(result.object_name)
        if result.nsfw or (row is not None and row.nsfw):
            withheld += 1
            continue
        data = await load(store, result.object_name) if row is not None else None
        if row is None or data is None:
            missing += 1
            continue
        shown.append(Shown(row, data))
    return shown, withheld, missing


def as_upload(item: ImageItem, data: bytes) -> BufferedInputFile:
    return BufferedInputFile(data, filename=f"aisha-{item.id.hex[:8]}.{item.extension}")


async def send_photo(
    bot: Bot,
    chat_id: int,
    item: ImageItem,
    store: ObjectStore,
    caption: str,
    markup: InlineKeyboardMarkup | None,
) -> Message | None:
    """Send the picture (a video item as a video); None only when neither Telegram nor the
    store has it."""
    send = bot.send_video if item.is_video else bot.send_photo
    if item.telegram_file_id:
        with contextlib.suppress(TelegramBadRequest):
            return await send(chat_id, item.telegram_file_id, caption=caption, reply_markup=markup)
    data = await load(store, item.object_name)
    if data is None:
        return None
    return await send(chat_id, as_upload(item, data), caption=caption, reply_markup=markup)


def file_id_of(message: Message) -> str | None:
    """The largest size's file_id (the one that re-sends the original), or the video's."""
    if message.video is not None:
        return message.video.file_id
    return message.photo[-1].file_id if message.photo else None
