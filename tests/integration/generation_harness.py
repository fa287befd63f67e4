"""Shared pieces of the bot's generation and gallery tests: the real bot (aiogram polling the
Telegram emulator, real NATS + PostgreSQL), and helpers that play the backend — they store
result images and `generated_images` rows (as the status service would, with a superuser
connection) and publish its events straight to JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import io
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import asyncpg
import msgspec
import nats
import pytest
from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore
from PIL import Image

from contracts import GeneratedImage, GenerationCompleted, encode, new_event_id, utcnow
from contracts.base import Event
from contracts.jetstream import OBJ_IMAGES
from sandbox.telegram import Limits, TelegramEmulator
from sandbox.telegram.state import CallbackRecord
from services.bot import bootstrap
from services.bot.config import BotConfig
from services.kit.config import CommonConfig

Json = dict[str, Any]
E = TypeVar("E", bound=Event)
TRIGGER = "ohwxtest"


class BotUnderTest:
    """`bootstrap.run` as a task, stoppable like a real process."""

    def __init__(self, config: BotConfig):
        self.config = config
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(bootstrap.run(self.config, self._stop))
        await asyncio.sleep(0)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, timeout=15)
            self._task = None


@pytest.fixture
async def emu() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator(limits=Limits(enabled=False)) as emulator:
        yield emulator
        assert await emulator.violations() == {}  # no invalid HTML, oversize data, ...


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    yield nc.jetstream()
    await nc.drain()


@pytest.fixture
async def admin_pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=3)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
async def bot(
    emu: TelegramEmulator, nats_url: str, db_url: str, js: JetStreamContext
) -> AsyncIterator[BotUnderTest]:
    common = CommonConfig(
        service="bot", database_url=db_url, nats_url=nats_url, http_host="127.0.0.1",
        http_port=0, log_format="text", log_level="INFO", shutdown_grace_seconds=3.0,
    )  # fmt: skip
    config = BotConfig(
        common=common,
        telegram_bot_token="123456:generation-test-token",
        telegram_api_url=emu.base_url,
        send_rate_chat=50.0,
        send_burst_chat=20,
        album_window_seconds=0.3,
        max_concurrent_generations=2,
    )
    under_test = BotUnderTest(config)
    await under_test.start()
    yield under_test
    await under_test.stop()


@pytest.fixture
async def images_store(js: JetStreamContext, bot: BotUnderTest) -> ObjectStore:
    """The `aisha_images` bucket (provisioned by the bot's runtime at start)."""
    store: ObjectStore = await eventually(lambda: _bucket(js))
    return store


async def _bucket(js: JetStreamContext) -> ObjectStore | None:
    with contextlib.suppress(nats.js.errors.NotFoundError, nats.js.errors.BucketNotFoundError):
        return await js.object_store(OBJ_IMAGES.name)
    return None


# --- waiting and clicking ---------------------------------------------------------------------


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.05)


def buttons(message: Json) -> list[Json]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [b for row in rows for b in row]


def has_button(message: Json, prefix: str) -> bool:
    return any(b.get("callback_data", "").startswith(prefix) for b in buttons(message))


def content(message: Json) -> str:
    return str(message.get("text") or message.get("caption") or "")


async def bot_message(
    emu: TelegramEmulator,
    chat: int,
    text: str | None = None,
    button: str | None = None,
    within: float = 10.0,
) -> Json:
    """Wait for a current bot message containing `text` (text or caption) / a button."""

    async def find() -> Json | None:
        for message in reversed(await emu.bot_messages(chat)):
            if text is not None and text not in content(message):
                continue
            if button is not None and not has_button(message, button):
                continue
            return message
        return None

    return await eventually(find, within)  # type: ignore[no-any-return]


async def press(emu: TelegramEmulator, user: int, message: Json, prefix: str) -> str:
    data = next(
        b["callback_data"] for b in buttons(message) if b["callback_data"].startswith(prefix)
    )
    return await emu.press_button(user, message["message_id"], data=data)


async def answer_of(emu: TelegramEmulator, chat: int, query_id: str) -> Json:
    async def find() -> Json | None:
        for entry in (await emu.transcript(chat))["callback_answers"]:
            if entry["id"] == query_id and entry["answer"] is not None:
                return entry["answer"]  # type: ignore[no-any-return]
        return None

    return await eventually(find)  # type: ignore[no-any-return]


def forge_press(emu: TelegramEmulator, user_id: int, message_id: int, data: str) -> str:
    """A callback query with arbitrary data, as a hostile client could send."""
    world = emu.world
    query_id = str(secrets.randbits(62))
    query: Json = {
        "id": query_id,
        "from": world.users[user_id],
        "message": world.messages[user_id][message_id].message,
        "chat_instance": "1",
        "data": data,
    }
    world.callbacks[query_id] = CallbackRecord(query, user_id, time.monotonic())
    world.push_update("callback_query", query)
    return query_id


async def current(emu: TelegramEmulator, chat: int, message_id: int) -> Json | None:
    for message in await emu.bot_messages(chat):
        if message["message_id"] == message_id:
            return message
    return None


def file_bytes(emu: TelegramEmulator, file_id: str) -> bytes:
    stored = emu.world.files.get(file_id)
    assert stored is not None
    return stored.data


# --- playing the backend ----------------------------------------------------------------------


def picture(
    color: tuple[int, int, int], size: tuple[int, int] = (512, 512), fmt: str = "PNG"
) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


async def publish(js: JetStreamContext, event: Event) -> None:
    await js.publish(event.subject, encode(event), headers={"Nats-Msg-Id": event.event_id})


async def events_of(js: JetStreamContext, subject: str, kind: type[E], **match: Any) -> list[E]:
    """Every event on `subject` now in the stream whose fields equal `match`."""
    sub = await js.subscribe(subject, ordered_consumer=True)
    found: list[E] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            event = msgspec.json.decode(msg.data, type=kind)
            if all(getattr(event, k) == v for k, v in match.items()):
                found.append(event)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
    return found


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
    colors: list[tuple[int, int, int]],
    nsfw: tuple[int, ...] = (),
) -> list[bytes]:
    """What the status service does when FAL finishes: store, insert rows, announce."""
    row = await pool.fetchrow(
        "SELECT user_id, seed FROM generations WHERE id = $1", uuid.UUID(generation_id)
    )
    images, blobs = [], []
    for position, color in enumerate(colors):
        data = picture(color)
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
