"""Likeness in the bot, with the real photo-gate worker process, real NATS and PostgreSQL:
each delivered picture of a portrait avatar is scored against the avatar's reference
identity, the score is stored with the picture and shown under it (and in the gallery); a
weak picture is re-drawn once, free; a picture without a face gets no score; an avatar
without an identity is not scored at all."""

from __future__ import annotations

import asyncio
import functools
import uuid

import asyncpg
import pytest
from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore

from contracts import GenerationRequested
from sandbox.telegram import TelegramEmulator
from services.bot.avatars.likeness import identity_of
from services.bot.avatars.likeness_faces import faces_in
from tests import faces
from tests.botkit import ADMIN_ID, BotUnderTest, bot_message, events_of, eventually, press
from tests.integration import generation_harness as harness
from tests.integration.generation_harness import complete, seed_avatar

images_store = harness.images_store
REQUESTED = "aisha.generation.requested"


@functools.cache
def _reference() -> list[float]:
    """Obama's identity from variants of two of his photos (the third is the probe)."""
    found = [faces_in(faces.person(i))[0].embedding for i in range(faces.DISTINCT) if i % 3]
    identity = identity_of(found)
    assert identity is not None
    return list(identity.center)


def _photo(name: str) -> bytes:
    return faces.jpeg(faces.fit(faces.original(name)))


async def _retry_of(pool: asyncpg.Pool, gid: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT * FROM generations WHERE parent_id = $1 AND likeness_retry", uuid.UUID(gid)
    )


async def _generation(pool: asyncpg.Pool, uid: int, avatar_id: str, count: int) -> str:
    gid = await pool.fetchval(
        "INSERT INTO generations (user_id, avatar_id, prompt, aspect_ratio, num_images, seed, "
        "status) VALUES ($1, $2, 'photo of ohwxtest man', '1:1', $3, 7, 'submitted') "
        "RETURNING id",
        uid, uuid.UUID(avatar_id), count,
    )  # fmt: skip
    return str(gid)


async def test_each_picture_shows_its_likeness_and_the_gallery_keeps_it(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool,
    images_store: ObjectStore,
) -> None:  # fmt: skip
    uid = (await emu.create_user("Barack"))["id"]
    avatar_id = await seed_avatar(admin_pool, uid, name="Barack")
    await admin_pool.execute(
        "UPDATE avatars SET likeness_center = $2, likeness_spread = 0.1, likeness_faces = 14 "
        "WHERE id = $1",
        uuid.UUID(avatar_id), _reference(),
    )  # fmt: skip
    gid = await _generation(admin_pool, uid, avatar_id, 3)
    pictures = [_photo("obama.jpg"), _photo("biden.jpg"), _photo("coffee.jpg")]
    await complete(js, admin_pool, images_store, gid, pictures)
    await bot_message(emu, uid, text="Ready: 3 pictures", button="grun:again", within=20)
    album = [m for m in await emu.bot_messages(uid) if m.get("media_group_id")]
    assert len(album) == 3
    captions = [m.get("caption") or "" for m in album]
    assert "Likeness" in captions[0]
    assert "(high)" in captions[0]
    assert "(low)" in captions[1]
    assert "Likeness" not in captions[2]  # a landscape: not applicable, nothing shown

    rows = await admin_pool.fetch(
        "SELECT id, likeness, likeness_distance FROM generated_images "
        "WHERE generation_id = $1 ORDER BY position",
        uuid.UUID(gid),
    )
    assert rows[0]["likeness"] >= 70
    assert rows[0]["likeness_distance"] < 0.45
    assert rows[1]["likeness"] < 40
    assert (rows[2]["likeness"], rows[2]["likeness_distance"]) == (None, None)

    # the weak picture is re-drawn once, free: one new generation of one picture, new seed
    notice = await bot_message(emu, uid, text="Low likeness in 1 of the pictures")
    retry = await eventually(lambda: _retry_of(admin_pool, gid))
    assert (retry["num_images"], retry["avatar_id"], retry["status"]) == (
        1, uuid.UUID(avatar_id), "pending",
    )  # fmt: skip
    assert retry["seed"] != 7
    assert retry["progress_message_id"] == notice["message_id"]
    [event] = await eventually(
        lambda: events_of(js, REQUESTED, GenerationRequested, generation_id=str(retry["id"]))
    )
    assert isinstance(event, GenerationRequested)
    assert event.credits == 0
    with pytest.raises(asyncpg.UniqueViolationError):  # at most one re-draw per generation
        await admin_pool.execute(
            "INSERT INTO generations (user_id, avatar_id, prompt, aspect_ratio, num_images, "
            "seed, parent_id, likeness_retry) VALUES ($1, $2, 'p', '1:1', 1, 1, $3, true)",
            uid, uuid.UUID(avatar_id), uuid.UUID(gid),
        )  # fmt: skip
    # the re-draw is weak again: both are shown with their scores, nothing more is re-drawn
    await complete(js, admin_pool, images_store, str(retry["id"]), [_photo("biden.jpg")])
    redrawn = await bot_message(emu, uid, text="(low)", button="grun:again", within=20)
    assert redrawn["message_id"] != notice["message_id"]
    await asyncio.sleep(0.5)
    assert await _retry_of(admin_pool, str(retry["id"])) is None

    await emu.send_command(uid, "gallery")
    gallery = await bot_message(emu, uid, text="Your gallery")
    await press(emu, uid, gallery, f"img:open:{rows[0]['id'].hex}")
    opened = await bot_message(emu, uid, button="img:fav:")
    assert f"Likeness {round(rows[0]['likeness'])}% (high)" in opened["caption"]

    # the admin's /stats: 3 scored (the landscape is not), 2 low, 1 free re-draw
    await emu.create_user("Admin", user_id=ADMIN_ID)
    await emu.send_command(ADMIN_ID, "stats")
    stats = await bot_message(emu, ADMIN_ID, text="Training statistics")
    assert "Likeness (30 days): 3 pictures scored" in stats["text"]
    assert "2 low, 1 generations re-drawn free" in stats["text"]


async def test_an_avatar_without_an_identity_is_not_scored(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool,
    images_store: ObjectStore,
) -> None:  # fmt: skip
    uid = (await emu.create_user("Ann"))["id"]
    avatar_id = await seed_avatar(admin_pool, uid)
    gid = await _generation(admin_pool, uid, avatar_id, 1)
    await complete(js, admin_pool, images_store, gid, [_photo("obama.jpg")])
    single = await bot_message(emu, uid, button="grun:again", within=20)
    assert "Likeness" not in (single.get("caption") or "")

    async def stored() -> asyncpg.Record | None:
        return await admin_pool.fetchrow(
            "SELECT likeness, telegram_file_id FROM generated_images WHERE generation_id = $1 "
            "AND telegram_file_id IS NOT NULL",
            uuid.UUID(gid),
        )

    row = await eventually(stored)
    assert row["likeness"] is None
