"""The `photos` rows the intake and the gate read and write: the gate's record of an avatar's
photos, and a new photo inserted with its measurements."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from services.bot.app.models import AvatarStatus
from services.bot.app.photo_validation import Upload, ValidPhoto
from services.bot.avatars.photo_checks import PhotoReport
from services.bot.avatars.photo_gate import Known
from services.bot.avatars.photo_verdicts import ACCEPTED
from services.bot.avatars.service import AvatarService


@dataclass(frozen=True)
class NewPhoto:
    photo_id: UUID
    avatar_id: UUID
    user_id: int
    object_name: str
    photo: ValidPhoto
    upload: Upload
    report: PhotoReport


async def has(pool: asyncpg.Pool, avatar_id: UUID, sha256: str) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT 1 FROM photos WHERE avatar_id = $1 AND sha256 = $2", avatar_id, sha256
        )
    )


async def training_type(pool: asyncpg.Pool, avatar_id: UUID) -> str | None:
    value = await pool.fetchval("SELECT training_type FROM avatars WHERE id = $1", avatar_id)
    return None if value is None else str(value)


async def known(pool: asyncpg.Pool, avatar_id: UUID) -> list[Known]:
    """The gate's record of the avatar's photos, numbered in the order they came."""
    rows = await pool.fetch(
        "SELECT phash, embedding, warnings FROM photos WHERE avatar_id = $1 "
        "ORDER BY created_at, id",
        avatar_id,
    )
    return [
        Known(n, r["phash"], r["embedding"], r["warnings"] or ())
        for n, r in enumerate(rows, start=1)
    ]


async def insert(avatars: AvatarService, new: NewPhoto) -> str:
    """The row and the avatar's count in one transaction, under the avatar's row lock, so
    concurrent items of two albums never go past the maximum."""
    p, up, r = new.photo, new.upload, new.report
    async with avatars.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT status, photo_count FROM avatars WHERE id = $1 AND user_id = $2 FOR UPDATE",
            new.avatar_id,
            new.user_id,
        )
        if row is None or row["status"] not in (AvatarStatus.UPLOADING, AvatarStatus.READY):
            return "not_uploading"
        if row["photo_count"] >= avatars.max_photos:
            return "full"
        inserted = await conn.fetchval(
            "INSERT INTO photos (id, avatar_id, user_id, object_name, sha256, size_bytes, "
            "width, height, format, status, telegram_file_id, telegram_file_unique_id, "
            "face_count, face_area_ratio, sharpness, brightness, phash, embedding, warnings) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'accepted', $10, $11, "
            "$12, $13, $14, $15, $16, $17, $18) "
            "ON CONFLICT (avatar_id, sha256) DO NOTHING RETURNING 1",
            new.photo_id, new.avatar_id, new.user_id, new.object_name, p.sha256, p.size_bytes,
            p.width, p.height, p.source_format, up.file_id, up.file_unique_id,
            r.face_count, r.face_area_ratio, r.sharpness, r.brightness, r.phash,
            list(r.embedding) if r.embedding is not None else None,
            [v.value for v in r.verdicts],
        )  # fmt: skip
        if inserted is None:
            return "duplicate"
        await conn.execute(
            "UPDATE avatars SET photo_count = photo_count + 1, status = CASE WHEN "
            "photo_count + 1 >= $2 THEN 'ready'::avatar_status ELSE 'uploading' END, "
            "updated_at = now() WHERE id = $1",
            new.avatar_id,
            avatars.min_photos,
        )
    return ACCEPTED
