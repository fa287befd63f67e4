"""Generated images in PostgreSQL: the gallery, favourites, deletion, export lists, share
links and inline-mode favourites.

Ownership is part of every user-facing query (`i.user_id = $1`), so another user's image id
answers exactly like a missing one. Images flagged NSFW are never listed, shared or exported:
the user was told they were withheld, and no later path may reveal them.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

SELECT = (
    "SELECT i.id, i.generation_id, i.position, i.object_name, i.width, i.height, "
    "i.content_type, i.nsfw, i.telegram_file_id, i.is_favorite, i.created_at, g.prompt, "
    "g.user_prompt, g.style_id, g.seed, g.aspect_ratio, g.avatar_id, a.name AS avatar_name, "
    "g.upscale_factor, g.animation_seconds, i.likeness "
    "FROM generated_images i JOIN generations g ON g.id = i.generation_id "
    "LEFT JOIN avatars a ON a.id = g.avatar_id "
    "LEFT JOIN generated_images src ON src.id = g.source_image_id "
)
#: A training check's test portraits (0014) are the product's, shown once with its verdict.
VISIBLE = "i.user_id = $1 AND g.user_id = $1 AND NOT i.nsfw AND NOT g.training_check"
#: Newest first; an upscale or a video sits right after the picture it comes from (its
#: source's place).
ORDER = (
    " ORDER BY coalesce(src.created_at, i.created_at) DESC,"
    " coalesce(src.generation_id, i.generation_id), coalesce(src.position, i.position),"
    " g.upscale_factor NULLS FIRST, g.animation_seconds NULLS FIRST, i.created_at"
)
#: `secrets.token_urlsafe(16)`: 128 random bits, 22 URL-safe characters.
TOKEN_BYTES = 16


@dataclass(frozen=True, kw_only=True)
class ImageItem:
    id: UUID
    generation_id: UUID
    position: int
    object_name: str
    width: int | None
    height: int | None
    content_type: str | None
    nsfw: bool
    telegram_file_id: str | None
    is_favorite: bool
    created_at: datetime
    prompt: str
    user_prompt: str | None
    style_id: str | None
    seed: int
    aspect_ratio: str
    avatar_id: UUID | None
    avatar_name: str | None
    #: Set when this picture is an upscale (2 or 4) of another one.
    upscale_factor: int | None = None
    #: Set when this item is a video (an animation of another picture), its seconds.
    animation_seconds: int | None = None
    #: 0-100 against the avatar's reference identity (0013); None: not scored.
    likeness: float | None = None

    @classmethod
    def from_record(cls, r: Any) -> ImageItem:
        return cls(**{key: r[key] for key in cls.__dataclass_fields__})

    @property
    def extension(self) -> str:
        types = {"image/png": "png", "image/webp": "webp", "video/mp4": "mp4"}
        return types.get(self.content_type or "", "jpg")

    @property
    def is_video(self) -> bool:
        """An animation's clip: sent with sendVideo, never upscaled or animated again."""
        return (self.content_type or "").startswith("video/")


@dataclass(frozen=True, kw_only=True)
class Page:
    items: list[ImageItem]
    total: int
    page: int
    pages: int
    size: int

    @property
    def first(self) -> int:
        """The 1-based number of the page's first item (numbers run across pages)."""
        return self.page * self.size + 1


class ImageService:
    def __init__(self, pool: asyncpg.Pool, *, page_size: int = 5):
        self.pool = pool
        self.page_size = page_size

    async def page(
        self, user_id: int, page: int, *, avatar_id: UUID | None, favorites: bool
    ) -> Page:
        """One gallery page (newest first); a page past the end shows the last one."""
        where, args = self._filter(user_id, avatar_id, favorites)
        total = int(await self.pool.fetchval(
            "SELECT count(*) FROM generated_images i JOIN generations g "
            f"ON g.id = i.generation_id WHERE {where}", *args,
        ))  # fmt: skip
        pages = max(1, math.ceil(total / self.page_size))
        page = min(max(page, 0), pages - 1)
        rows = await self.pool.fetch(
            f"{SELECT} WHERE {where}{ORDER} LIMIT {self.page_size} OFFSET {page * self.page_size}",
            *args,
        )
        items = [ImageItem.from_record(r) for r in rows]
        return Page(items=items, total=total, page=page, pages=pages, size=self.page_size)

    @staticmethod
    def _filter(user_id: int, avatar_id: UUID | None, favorites: bool) -> tuple[str, list[Any]]:
        where, args = VISIBLE, list[Any]()
        args.append(user_id)
        if avatar_id is not None:
            where += " AND g.avatar_id = $2"
            args.append(avatar_id)
        if favorites:
            where += " AND i.is_favorite"
        return where, args

    async def get(self, user_id: int, image_id: UUID) -> ImageItem | None:
        row = await self.pool.fetchrow(f"{SELECT} WHERE {VISIBLE} AND i.id = $2", user_id, image_id)
        return ImageItem.from_record(row) if row else None

    async def of_generation(self, generation_id: UUID) -> list[ImageItem]:
        """All result rows of a generation (NSFW included: the caller withholds them)."""
        rows = await self.pool.fetch(
            f"{SELECT} WHERE i.generation_id = $1 ORDER BY i.position", generation_id
        )
        return [ImageItem.from_record(r) for r in rows]

    async def set_file_id(self, user_id: int, image_id: UUID, file_id: str) -> None:
        await self.pool.execute(
            "UPDATE generated_images SET telegram_file_id = $3 WHERE id = $2 AND user_id = $1",
            user_id,
            image_id,
            file_id,
        )

    async def set_likeness(self, image_id: UUID, percent: float, distance: float) -> None:
        """Written at delivery (`generation.delivery`), so the gallery shows it later."""
        await self.pool.execute(
            "UPDATE generated_images SET likeness = $2, likeness_distance = $3 WHERE id = $1",
            image_id,
            percent,
            distance,
        )

    async def toggle_favorite(self, user_id: int, image_id: UUID) -> bool | None:
        """The new favourite flag, or None if the image is not the user's."""
        value = await self.pool.fetchval(
            "UPDATE generated_images SET is_favorite = NOT is_favorite "
            "WHERE id = $2 AND user_id = $1 AND NOT nsfw RETURNING is_favorite",
            user_id,
            image_id,
        )
        return None if value is None else bool(value)

    async def delete(self, user_id: int, image_id: UUID) -> str | None:
        """Delete the row (its share links cascade); returns the object name to remove."""
        value = await self.pool.fetchval(
            "DELETE FROM generated_images WHERE id = $2 AND user_id = $1 RETURNING object_name",
            user_id,
            image_id,
        )
        return None if value is None else str(value)

    async def avatars_with_images(self, user_id: int) -> list[tuple[UUID, str]]:
        rows = await self.pool.fetch(
            "SELECT DISTINCT a.id, a.name, a.created_at FROM generated_images i "
            "JOIN generations g ON g.id = i.generation_id JOIN avatars a ON a.id = g.avatar_id "
            f"WHERE {VISIBLE} ORDER BY a.created_at DESC LIMIT 20",
            user_id,
        )
        return [(r["id"], r["name"]) for r in rows]

    async def for_export(self, user_id: int, *, favorites: bool, limit: int) -> list[ImageItem]:
        """Up to `limit` + 1 images, so the caller can tell "over the limit" from "exactly"."""
        where, args = self._filter(user_id, None, favorites)
        rows = await self.pool.fetch(f"{SELECT} WHERE {where}{ORDER} LIMIT {limit + 1}", *args)
        return [ImageItem.from_record(r) for r in rows]

    async def inline_favorites(
        self, user_id: int, query: str, offset: int, limit: int
    ) -> list[ImageItem]:
        """Favourites already on Telegram (cached photos need a file_id), optionally only
        those whose prompt contains `query`."""
        where = (
            f"{VISIBLE} AND i.is_favorite AND i.telegram_file_id IS NOT NULL"
            " AND coalesce(i.content_type, '') NOT LIKE 'video/%'"  # cached photos only
        )
        args: list[Any] = [user_id]
        if query:
            pattern = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where += " AND (g.prompt ILIKE $2 OR coalesce(g.user_prompt, '') ILIKE $2)"
            args.append(f"%{pattern}%")
        rows = await self.pool.fetch(
            f"{SELECT} WHERE {where}{ORDER} LIMIT {int(limit)} OFFSET {int(offset)}", *args
        )
        return [ImageItem.from_record(r) for r in rows]

    # -- share links --------------------------------------------------------------------------
    async def share(self, user_id: int, image_id: UUID) -> str | None:
        """The image's active link (one per image), created on first use; None if not yours."""
        async with self.pool.acquire() as conn, conn.transaction():
            owned = await conn.fetchval(
                "SELECT 1 FROM generated_images WHERE id = $2 AND user_id = $1 AND NOT nsfw "
                "FOR UPDATE",
                user_id,
                image_id,
            )
            if owned is None:
                return None
            token = await conn.fetchval(
                "SELECT token FROM share_links WHERE image_id = $1 AND revoked_at IS NULL "
                "ORDER BY created_at DESC LIMIT 1",
                image_id,
            )
            if token is None:
                token = secrets.token_urlsafe(TOKEN_BYTES)
                await conn.execute(
                    "INSERT INTO share_links (token, image_id, user_id) VALUES ($1, $2, $3)",
                    token,
                    image_id,
                    user_id,
                )
        return str(token)

    async def revoke(self, user_id: int, image_id: UUID) -> int | None:
        """Links revoked (0 when none was active), or None if the image is not yours."""
        if await self.get(user_id, image_id) is None:
            return None
        result = await self.pool.execute(
            "UPDATE share_links SET revoked_at = now() WHERE image_id = $2 AND user_id = $1 "
            "AND revoked_at IS NULL",
            user_id,
            image_id,
        )
        return int(str(result).rsplit(" ", 1)[-1])

    async def shared(self, token: str) -> ImageItem | None:
        """The image behind an active link, for anyone holding the token."""
        row = await self.pool.fetchrow(
            f"{SELECT} JOIN share_links s ON s.image_id = i.id "
            "WHERE s.token = $1 AND s.revoked_at IS NULL AND NOT i.nsfw",
            token,
        )
        return ImageItem.from_record(row) if row else None
