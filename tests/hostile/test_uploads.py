"""Hostile uploads: files that are not images, bombs, empty and oversized files, and more
photos than an avatar takes. Each gets a localized line in the one rejection summary, and
nothing of it is stored: no photo row, no object, no counter change."""

from __future__ import annotations

import asyncpg
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.jetstream import OBJ_PHOTOS
from sandbox.telegram import TelegramEmulator
from tests.botkit import press
from tests.hostile.harness import forge_photo, last_id, new_user, photo, png_bomb, reply, user_rows

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.usefixtures("guard")]
SUMMARY = {"en": "Some files were not accepted", "ru": "Некоторые файлы не приняты"}


async def uploading_avatar(emu: TelegramEmulator, pool: asyncpg.Pool, lang: str) -> tuple[int, str]:
    """A user whose new avatar is waiting for photos (min 3, max 5 in this suite)."""
    uid = await new_user(emu, "Uploader", lang)
    menu = await reply(emu, uid, button="menu:create")
    await press(emu, uid, menu, "menu:create")
    await reply(emu, uid, "1–40")
    await emu.send_text(uid, "Mira")
    types = await reply(emu, uid, button="training_type:pick")
    await press(emu, uid, types, "training_type:pick:portrait")
    await press(emu, uid, await reply(emu, uid, button="gender:"), "gender:female")
    await reply(emu, uid, ": 0 ")
    avatar_id = await pool.fetchval("SELECT id::text FROM avatars WHERE user_id = $1", uid)
    return uid, avatar_id


async def objects_of(js: JetStreamContext, avatar_id: str) -> list[str]:
    store = await js.object_store(OBJ_PHOTOS.name)
    try:
        infos = await store.list(ignore_deletes=True)
    except NotFoundError:
        return []
    return [i.name for i in infos if i.name.startswith(f"{avatar_id}/") and not i.deleted]


async def test_non_images_named_jpg_as_document_and_as_photo(
    emu: TelegramEmulator, pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    uid, avatar_id = await uploading_avatar(emu, pool, "ru")
    before, mark = await user_rows(pool, uid), last_id(emu, uid)
    fake = b"MZ\x90\x00 an executable, not a JPEG" * 20
    await emu.send_document(uid, fake, "cat.jpg", "image/jpeg")
    forge_photo(emu, uid, fake, (800, 600))
    summary = await reply(emu, uid, SUMMARY["ru"], after=mark)
    assert "2 × не изображение" in summary["text"]
    assert await user_rows(pool, uid) == before
    assert await objects_of(js, avatar_id) == []


async def test_decompression_bomb_is_refused_from_its_header(
    emu: TelegramEmulator, pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    """20000×20000 pixels in 76 KB: refused on the dimensions, never decoded (the memory
    side is measured in test_images.py)."""
    uid, avatar_id = await uploading_avatar(emu, pool, "en")
    before, mark = await user_rows(pool, uid), last_id(emu, uid)
    bomb = png_bomb(20_000, 20_000)
    assert len(bomb) < 200_000
    await emu.send_document(uid, bomb, "holiday.png", "image/png")
    forge_photo(emu, uid, bomb, (20_000, 20_000))
    summary = await reply(emu, uid, SUMMARY["en"], after=mark)
    assert "2 × image dimensions are too large" in summary["text"]
    assert await user_rows(pool, uid) == before
    assert await objects_of(js, avatar_id) == []


async def test_empty_file_is_not_an_image(emu: TelegramEmulator, pool: asyncpg.Pool) -> None:
    uid, _ = await uploading_avatar(emu, pool, "en")
    before, mark = await user_rows(pool, uid), last_id(emu, uid)
    await emu.send_document(uid, b"", "empty.jpg", "image/jpeg")
    summary = await reply(emu, uid, SUMMARY["en"], after=mark)
    assert "1 × not an image" in summary["text"]
    assert await user_rows(pool, uid) == before


async def test_oversized_document_is_refused_without_downloading_it(
    emu: TelegramEmulator, pool: asyncpg.Pool
) -> None:
    """Telegram says the size up front; a 21 MB file is refused before any getFile."""
    uid, _ = await uploading_avatar(emu, pool, "ru")
    before, mark = await user_rows(pool, uid), last_id(emu, uid)
    downloads = emu.world.stats["call:getFile"]
    big = photo(1)
    await emu.send_document(uid, big + b"\x00" * (21 * 1024 * 1024 - len(big)), "big.jpg")
    summary = await reply(emu, uid, SUMMARY["ru"], after=mark)
    assert "1 × файл больше 20 МБ" in summary["text"]
    assert emu.world.stats["call:getFile"] == downloads
    assert await user_rows(pool, uid) == before


async def test_two_albums_beyond_the_maximum_keep_the_count_at_the_maximum(
    emu: TelegramEmulator, pool: asyncpg.Pool, js: JetStreamContext
) -> None:
    """Telegram caps an album at 10, so a user exceeds the maximum with two albums sent
    back to back; their items are handled concurrently. The avatar row is locked while
    counting, so exactly `max` (5) photos are kept and the rest are refused."""
    uid, avatar_id = await uploading_avatar(emu, pool, "en")
    mark = last_id(emu, uid)
    await emu.send_album(uid, [photo(seed) for seed in range(10, 14)])
    await emu.send_album(uid, [photo(seed) for seed in range(20, 24)])
    summary = await reply(emu, uid, SUMMARY["en"], after=mark)
    assert "3 × over the limit" in summary["text"]
    await reply(emu, uid, "5 photos", after=mark, button="training:start")
    row = await pool.fetchrow(
        "SELECT photo_count, status FROM avatars WHERE id = $1::uuid", avatar_id
    )
    assert (row["photo_count"], row["status"]) == (5, "ready")
    assert await pool.fetchval("SELECT count(*) FROM photos WHERE user_id = $1", uid) == 5
    assert len(await objects_of(js, avatar_id)) == 5  # the refused ones left no file behind


async def test_photos_without_an_avatar_in_progress_are_not_stored(
    emu: TelegramEmulator, pool: asyncpg.Pool
) -> None:
    uid = await new_user(emu, "Drifter", "ru")
    before, mark = await user_rows(pool, uid), last_id(emu, uid)
    await emu.send_photo(uid, photo(3))
    await reply(emu, uid, "сначала создайте аватар", after=mark)
    assert await user_rows(pool, uid) == before
