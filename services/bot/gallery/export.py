"""Export of the gallery as one zip: the favourites or everything, bounded.

Telegram lets a bot upload at most 50 MB, and a zip is built in memory, so both the number of
pictures and their total size are capped; past either the user is told the numbers and
offered the favourites instead of getting a partial archive. Pictures are stored already
compressed (JPEG/PNG), so the zip only stores them (no deflate work for no gain). An
`index.csv` beside them keeps what the gallery shows: prompt, style, seed, size, date.
"""

from __future__ import annotations

import asyncio
import csv
import io
import zipfile
from dataclasses import dataclass
from typing import Literal

from nats.js.object_store import ObjectStore

from services.bot.gallery.image_files import load
from services.bot.gallery.service import ImageItem, ImageService

MAX_IMAGES = 200
MAX_BYTES = 48 * 1024 * 1024  # under Telegram's 50 MB upload limit, with room for the index


@dataclass(frozen=True, kw_only=True)
class Export:
    """A built archive (`data`), or why there is none (`refused`)."""

    count: int
    size: int = 0
    data: bytes | None = None
    refused: Literal["empty", "too_many", "too_big"] | None = None


class Exporter:
    def __init__(
        self,
        images: ImageService,
        store: ObjectStore,
        *,
        max_images: int = MAX_IMAGES,
        max_bytes: int = MAX_BYTES,
    ):
        self.images = images
        self.store = store
        self.max_images = max_images
        self.max_bytes = max_bytes

    async def build(self, user_id: int, *, favorites: bool) -> Export:
        items = await self.images.for_export(user_id, favorites=favorites, limit=self.max_images)
        if not items:
            return Export(count=0, refused="empty")
        if len(items) > self.max_images:
            return Export(count=len(items), refused="too_many")
        files: list[tuple[ImageItem, bytes]] = []
        total = 0
        for item in items:
            data = await load(self.store, item.object_name)
            if data is None:
                continue
            total += len(data)
            if total > self.max_bytes:
                return Export(count=len(items), size=total, refused="too_big")
            files.append((item, data))
        if not files:
            return Export(count=0, refused="empty")
        archive = await asyncio.to_thread(_zip, files)
        return Export(count=len(files), size=total, data=archive)


def file_name(number: int, item: ImageItem) -> str:
    return f"{number:03d}_{item.created_at:%Y%m%d}_{item.id.hex[:8]}.{item.extension}"


def _zip(files: list[tuple[ImageItem, bytes]]) -> bytes:
    index = io.StringIO()
    writer = csv.writer(index)
    writer.writerow(["file", "prompt", "style", "seed", "width", "height", "aspect", "created"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as archive:
        for number, (item, data) in enumerate(files, start=1):
            name = file_name(number, item)
            archive.writestr(name, data)
            writer.writerow([
                name, item.prompt, item.style_id or "", item.seed, item.width or "",
                item.height or "", item.aspect_ratio, item.created_at.isoformat(),
            ])  # fmt: skip
        archive.writestr("index.csv", index.getvalue())
    return buf.getvalue()
