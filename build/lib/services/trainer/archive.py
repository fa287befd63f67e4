"""The training archive: the avatar's accepted photos from the Object Store, zipped."""

from __future__ import annotations

import io
import zipfile

import asyncpg
from nats.js.object_store import ObjectStore


async def build_archive(
    pool: asyncpg.Pool, photos: ObjectStore, avatar_id: str
) -> tuple[bytes, int]:
    """Returns the zip bytes and how many images went in."""
    rows = await pool.fetch(
        "SELECT object_name FROM photos WHERE avatar_id = $1 AND status = 'accepted' "
        "ORDER BY created_at",
        avatar_id,
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for index, row in enumerate(rows):
            result = await photos.get(row["object_name"])
            suffix = row["object_name"].rsplit(".", 1)[-1]
            archive.writestr(f"{index:03d}.{suffix}", result.data or b"")
    return buffer.getvalue(), len(rows)
