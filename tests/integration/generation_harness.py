"""Shared pieces of the bot's generation and gallery tests (the bot, the emulator and the
waiting and clicking come from tests/botkit.py): helpers that play the backend — they store
result images and `generated_images` rows (as the status service would, with a superuser
connection) and publish its events straight to JetStream."""

from __future__ import annotations

import contextlib
import io
import uuid
from datetime import timedelta

import asyncpg
import nats
import pytest
from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore
from PIL import Image

from contracts import GeneratedImage, GenerationCompleted, new_event_id, utcnow
from contracts.jetstream import OBJ_IMAGES
from tests.botkit import BotUnderTest, eventually, publish

TRIGGER = "ohwxtest"


@pytest.fixture
async def images_store(js: JetStreamContext, bot: BotUnderTest) -> ObjectStore:
    """The `aisha_images` bucket (provisioned by the bot's runtime at start)."""
    store: ObjectStore = await eventually(lambda: _bucket(js))
    return store


async def _bucket(js: JetStreamContext) -> ObjectStore | None:
    with contextlib.suppress(nats.js.errors.NotFoundError, nats.js.errors.BucketNotFoundError):
        return await js.object_store(OBJ_IMAGES.name)
    return None


# --- playing the backend ----------------------------------------------------------------------


def picture(
    color: tuple[int, int, int], size: tuple[int, int] = (512, 512), fmt: str = "PNG"
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


async def seed_user(pool: asyncpg.Pool, uid: int, language: str = "en") -> None:
    await pool.execute(
        "INSERT INTO users (id, first_name, language) VALUES ($1, 'U', $2) "
        "ON CONFLICT (id) DO UPDATE SET language = EXCLUDED.language",
        uid,
        language,
    )


async def seed_avatar(
    pool: asyncpg.Pool, uid: int, name: str = "Anna", language: str = "en"
) -> str:
    """A trained (completed) portrait avatar of a woman, trigger word `ohwxtest`."""
    await seed_user(pool, uid, language)
    avatar_id = await pool.fetchval(
        "INSERT INTO avatars (user_id, name, gender, trigger_word, status, photo_count, "
        "training_attempt) VALUES ($1, $2, 'female', $3, 'completed', 10, 1) RETURNING id",
        uid, name, TRIGGER,
    )  # fmt: skip
    return str(avatar_id)


async def complete(
    js: JetStreamContext,
    pool: asyncpg.Pool,
    store: ObjectStore,
    generation_id: str,
    colors: list[tuple[int, int, int]] | list[bytes],
    nsfw: tuple[int, ...] = (),
) -> list[bytes]:
    """What the status service does when FAL finishes: store, insert rows, announce (a
    colour is drawn as a plain picture; bytes are stored as they are)."""
    row = await pool.fetchrow(
        "SELECT user_id, seed FROM generations WHERE id = $1", uuid.UUID(generation_id)
    )
    images, blobs = [], []
    for position, color in enumerate(colors):
        data = color if isinstance(color, bytes) else picture(color)
        name = f"gen/{generation_id}/{position}.png"
        await store.put(name, data)
        await pool.execute(
            "INSERT INTO generated_images (generation_id, user_id, position, object_name, width, "
            "height, content_type, nsfw) VALUES ($1, $2, $3, $4, 512, 512, 'image/png', $5)",
            uuid.UUID(generation_id), row["user_id"], position, name, position in nsfw,
        )  # fmt: skip
        images.append(GeneratedImage(object_name=name, width=512, height=512,
                                     content_type="image/png", nsfw=position in nsfw))  # fmt: skip
        blobs.append(data)
    await publish(js, GenerationCompleted(
        event_id=new_event_id(), occurred_at=utcnow(), generation_id=generation_id,
        user_id=row["user_id"], request_id=f"req-{generation_id[:8]}", images=tuple(images),
        seed=row["seed"],
    ))  # fmt: skip
    return blobs


async def seed_gallery(
    pool: asyncpg.Pool,
    store: ObjectStore,
    uid: int,
    count: int,
    *,
    avatar_id: str | None = None,
    prompt: str = "photo of ohwxtest woman, on a beach",
) -> list[uuid.UUID]:
    """`count` finished one-picture generations, newest first in the returned ids."""
    ids = []
    for i in range(count):
        created = utcnow() - timedelta(minutes=i)
        generation_id = await pool.fetchval(
            "INSERT INTO generations (user_id, avatar_id, prompt, style_id, aspect_ratio, "
            "num_images, seed, status, created_at) VALUES ($1, $2, $3, $4, '1:1', 1, $5, "
            "'completed', $6) RETURNING id",
            uid, uuid.UUID(avatar_id) if avatar_id else None, f"{prompt} #{i}",
            "studio" if i % 2 else None, 1000 + i, created,
        )  # fmt: skip
        name = f"gen/{generation_id}/0.png"
        await store.put(name, picture((20 * i % 256, 100, 200 - 10 * i)))
        image_id = await pool.fetchval(
            "INSERT INTO generated_images (generation_id, user_id, position, object_name, width, "
            "height, content_type, created_at) VALUES ($1, $2, 0, $3, 512, 512, 'image/png', $4) "
            "RETURNING id",
            generation_id, uid, name, created,
        )  # fmt: skip
        ids.append(image_id)
    return ids
