"""The bot end to end in one process: real aiogram polling the Telegram emulator, real NATS
(JetStream, KV, Object Store) and a freshly migrated PostgreSQL per test.

Training events are published the way the status service would, straight to JetStream.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
import nats
import pytest
from nats.js import JetStreamContext
from PIL import Image, ImageDraw

from contracts import (
    FailureReason,
    TrainingCompleted,
    TrainingFailed,
    TrainingProgress,
    TrainingRequested,
    TrainingSubmitted,
    encode,
    new_event_id,
    utcnow,
)
from contracts.base import Event
from sandbox.telegram import Limits, TelegramEmulator
from sandbox.telegram.state import CallbackRecord
from services.bot import bootstrap
from services.bot.config import BotConfig
from services.kit.config import CommonConfig

ADMIN_ID = 900_000_001
Json = dict[str, Any]


# --------------------------------------------------------------------------------------------
# harness
# --------------------------------------------------------------------------------------------


class BotUnderTest:
    """`bootstrap.run` as a task, stoppable and restartable like a real process."""

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


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    yield nc.jetstream()
    await nc.drain()


@pytest.fixture
async def admin_pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
async def bot(
    emu: TelegramEmulator, nats_url: str, db_url: str, js: JetStreamContext
) -> AsyncIterator[BotUnderTest]:
    common = CommonConfig(
        service="bot",
        database_url=db_url,
        nats_url=nats_url,
        http_host="127.0.0.1",
        http_port=0,
        log_format="text",
        log_level="INFO",
        shutdown_grace_seconds=3.0,
    )
    config = BotConfig(
        common=common,
        telegram_bot_token="123456:integration-test-token",
        telegram_api_url=emu.base_url,
        admin_ids=frozenset({ADMIN_ID}),
        send_rate_chat=50.0,
        send_burst_chat=20,
        album_window_seconds=0.3,
    )
    under_test = BotUnderTest(config)
    await under_test.start()
    yield under_test
    await under_test.stop()


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    """Poll `check` until it returns something truthy (bounded)."""
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


def has_button(message: Json, data_prefix: str) -> bool:
    return any(b.get("callback_data", "").startswith(data_prefix) for b in buttons(message))


async def bot_message(
    emu: TelegramEmulator, chat: int, text: str | None = None, button: str | None = None
) -> Json:
    """Wait for a (current, non-deleted) bot message containing `text` / a button prefix."""

    async def find() -> Json | None:
        for message in reversed(await emu.bot_messages(chat)):
            if text is not None and text not in (message.get("text") or ""):
                continue
            if button is not None and not has_button(message, button):
                continue
            return message
        return None

    return await eventually(find)  # type: ignore[no-any-return]


async def press(emu: TelegramEmulator, user: int, message: Json, data_prefix: str) -> str:
    data = next(b["callback_data"] for b in buttons(message) if b["callback_data"].startswith(data_prefix))
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
    record = world.messages[user_id][message_id]
    query = {
        "id": str(secrets.randbits(62)),
        "from": world.users[user_id],
        "message": record.message,
        "chat_instance": "1",
        "data": data,
    }
    world.callbacks[query["id"]] = CallbackRecord(query, user_id, time.monotonic())
    world.push_update("callback_query", query)
    return query["id"]


def photo(seed: int, size: int = 600) -> bytes:
    """A distinct JPEG per seed (different pixels, so different hashes)."""
    img = Image.new("RGB", (size, size), ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    ImageDraw.Draw(img).rectangle((seed * 7 % 300, 40, seed * 7 % 300 + 120, 200), fill=(255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


async def publish(js: JetStreamContext, event: Event) -> None:
    await js.publish(event.subject, encode(event), headers={"Nats-Msg-Id": event.event_id})


async def requested_events(js: JetStreamContext, avatar_id: str) -> list[TrainingRequested]:
    """Every TrainingRequested for this avatar now in the stream."""
    sub = await js.subscribe("aisha.avatar.training_requested", ordered_consumer=True)
    found: list[TrainingRequested] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except (TimeoutError, nats.errors.TimeoutError):
                break
            event = msgspec.json.decode(msg.data, type=TrainingRequested)
            if event.avatar_id == avatar_id:
                found.append(event)
    finally:
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()
    return found


async def avatar_row(pool: asyncpg.Pool, user_id: int) -> asyncpg.Record | None:
    return await pool.fetchrow("SELECT * FROM avatars WHERE user_id = $1", user_id)


async def create_avatar_by_buttons(emu: TelegramEmulator, uid: int, name: str) -> Json:
    """/start → Create → name → gender → portrait; returns the live counter message."""
    await emu.send_command(uid, "start")
    menu = await bot_message(emu, uid, button="menu:create")
    await press(emu, uid, menu, "menu:create")
    await bot_message(emu, uid, text="name")
    await emu.send_text(uid, name)
    gender = await bot_message(emu, uid, button="gender:")
    await press(emu, uid, gender, "gender:female")
    types = await bot_message(emu, uid, button="training_type:pick")
    await press(emu, uid, types, "training_type:pick:portrait")
    return await bot_message(emu, uid, text="0 of 10")


def progress_event(avatar_id: str, uid: int, attempt: int, percent: int) -> TrainingProgress:
    return TrainingProgress(
        event_id=new_event_id(),
        occurred_at=utcnow(),
        avatar_id=avatar_id,
        user_id=uid,
        attempt=attempt,
        request_id="req-1",
        fal_status="IN_PROGRESS",
        progress=percent,
        eta_seconds=300,
    )
