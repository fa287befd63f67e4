"""Inline mode: `@bot <words>` in any chat lists the user's favourites to post.

Results are cached photos by `file_id` (no upload, nothing public) and marked personal, so
Telegram never shows one user's favourites to another from its cache. Typed words filter by
prompt; pages of 20 follow `next_offset`.
"""

from __future__ import annotations

from aiogram import Router
from aiogram.types import (
    InlineQuery,
    InlineQueryResultCachedPhoto,
    InlineQueryResultsButton,
    InlineQueryResultUnion,
)

from services.bot.app.models import User
from services.bot.app.routing import FeatureRouter
from services.bot.app.texts import Translator
from services.bot.gallery.service import ImageService
from services.bot.generation.prompts.builder import clean

PAGE = 20
MAX_OFFSET = 1000
MAX_QUERY = 64


def _offset(raw: str) -> int:
    return min(int(raw), MAX_OFFSET) if raw.isdigit() else 0


async def favorites(query: InlineQuery, user: User, t: Translator, images: ImageService) -> None:
    offset = _offset(query.offset)
    items = await images.inline_favorites(user.id, clean(query.query)[:MAX_QUERY], offset, PAGE)
    results: list[InlineQueryResultUnion] = [
        InlineQueryResultCachedPhoto(id=item.id.hex, photo_file_id=item.telegram_file_id or "")
        for item in items
    ]
    button = None
    if not results and offset == 0:
        button = InlineQueryResultsButton(text=t.plain("inline.empty"), start_parameter="gallery")
    await query.answer(
        results,
        cache_time=10,
        is_personal=True,
        next_offset=str(offset + PAGE) if len(items) == PAGE else "",
        button=button,
    )


def build() -> Router:
    router = FeatureRouter(name="inline")
    router.inline_query.register(favorites)
    return router
