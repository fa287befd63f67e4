"""Drive the real bot in tests: aiogram polling the Telegram emulator, real NATS and PostgreSQL.

Fixtures (defined here, made available to every test by ``tests/conftest.py``; request them
by name)::

    emu          the Telegram emulator (sandbox.telegram), no rate limits; after the test it
                 asserts that no Telegram rule was broken (invalid HTML, oversize data, ...)
    js           a JetStream context on the test NATS server
    admin_pool   a superuser asyncpg pool on the test's fresh database (`db_url`), to seed
                 and inspect rows (the bot itself runs as its restricted role)
    bot          the running bot (`BotUnderTest`) wired to `emu`, NATS and `db_url`
    bot_overrides  BotConfig fields to change; override it in a module, e.g.
                 ``@pytest.fixture`` ``def bot_overrides(): return {"min_photos": 3}``

A test::

    async def test_start(emu: TelegramEmulator, bot: BotUnderTest) -> None:
        uid = (await emu.create_user("Anna", language_code="en"))["id"]
        await emu.send_command(uid, "start")                   # a command: /start
        menu = await bot_message(emu, uid, button="menu:create")  # wait for a bot message
        await press(emu, uid, menu, "menu:create")              # press an inline button
        await bot_message(emu, uid, text="name")                # ... with this text/caption
        await emu.send_text(uid, "Anna")                        # plain text
        await emu.send_photo(uid, photo(1))                     # a photo (also send_document)

`bot_message` waits (10 s by default) for the newest current bot message matching the text
and/or a button whose callback data starts with the prefix; `eventually` polls any async
check until it is truthy. `bot.stop()` / `bot.start()` restart the bot like a process.
For other scopes (a bot per module), build with `bot_config`, `jetstream` and `running_bot`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import msgspec
import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import encode
from contracts.base import Event
from contracts.jetstream import ConsumerSpec
from sandbox.telegram import Limits, TelegramEmulator
from sandbox.telegram.state import CallbackRecord
from services.bot.app import bootstrap
from services.bot.app.config import BotConfig
from services.bot.app.pricing import Pricing
from services.kit.broker import provision
from services.kit.config import CommonConfig
from tests import faces

Json = dict[str, Any]
E = TypeVar("E", bound=Event)
#: In `admin_ids` of every bot built by `bot_config` (unless overridden); the emulator never
#: gives a user this id unless asked: ``emu.create_user("Admin", user_id=ADMIN_ID)``.
ADMIN_ID = 900_000_001


# --- the bot ----------------------------------------------------------------------------------


class BotUnderTest:
    """`bootstrap.run` as a task, stoppable and restartable like a real process (SIGTERM)."""

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


def bot_config(emu: TelegramEmulator, nats_url: str, database_url: str, **fields: Any) -> BotConfig:
    """A test bot's config against the emulator: fast sending, short album window, `ADMIN_ID`
    an admin; `fields` override any BotConfig field."""
    common = CommonConfig(
        service="bot", database_url=database_url, nats_url=nats_url, http_host="127.0.0.1",
        http_port=0, log_format="text", log_level="INFO", shutdown_grace_seconds=3.0,
    )  # fmt: skip
    settings: dict[str, Any] = {
        "telegram_bot_token": "123456:integration-test-token",
        "telegram_api_url": emu.base_url,
        "admin_ids": frozenset({ADMIN_ID}),
        "send_rate_chat": 50.0,
        "send_burst_chat": 20,
        "album_window_seconds": 0.3,
        # Jobs are free unless a test is about credits (tests seed users straight into the
        # database, without the trial a /start would give them).
        "pricing": Pricing.free_jobs(),
    }
    return BotConfig(common=common, **(settings | fields))


@contextlib.asynccontextmanager
async def running_bot(config: BotConfig) -> AsyncIterator[BotUnderTest]:
    """The bot started with `config`, stopped on exit."""
    under_test = BotUnderTest(config)
    await under_test.start()
    try:
        yield under_test
    finally:
        await under_test.stop()


@contextlib.asynccontextmanager
async def jetstream(nats_url: str, *, provisioned: bool = False) -> AsyncIterator[JetStreamContext]:
    """A JetStream context on its own connection, drained on exit; `provisioned`: with every
    stream, consumer and bucket of the contracts created first (as the services do at start)."""
    nc = await nats.connect(nats_url)
    try:
        context = nc.jetstream()
        if provisioned:
            await provision(context)
        yield context
    finally:
        await nc.drain()


# --- fixtures (exported to all tests by tests/conftest.py) ------------------------------------


@pytest.fixture
async def emu() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator(limits=Limits(enabled=False)) as emulator:
        yield emulator
        # no invalid HTML, oversize callback data, unknown methods... in any test
        assert await emulator.violations() == {}


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    async with jetstream(nats_url) as context:
        yield context


@pytest.fixture
async def admin_pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(db_url, min_size=1, max_size=3)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    """BotConfig fields a module wants changed (override this fixture in the module)."""
    return {}


@pytest.fixture
async def bot(
    emu: TelegramEmulator,
    nats_url: str,
    db_url: str,
    js: JetStreamContext,
    bot_overrides: dict[str, Any],
) -> AsyncIterator[BotUnderTest]:
    async with running_bot(bot_config(emu, nats_url, db_url, **bot_overrides)) as under_test:
        yield under_test


# --- waiting, reading and clicking ------------------------------------------------------------


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    """Poll `check` until it returns something truthy (bounded); returns that."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.05)


def buttons(message: Json) -> list[Json]:
    """The inline buttons of a message, row after row."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [b for row in rows for b in row]


def has_button(message: Json, prefix: str) -> bool:
    return any(b.get("callback_data", "").startswith(prefix) for b in buttons(message))


def content(message: Json) -> str:
    """The text, or the caption, of a message."""
    return str(message.get("text") or message.get("caption") or "")


async def bot_message(
    emu: TelegramEmulator,
    chat: int,
    text: str | None = None,
    button: str | None = None,
    within: float = 10.0,
) -> Json:
    """Wait for the newest current (non-deleted) bot message containing `text` (in its text or
    caption) and/or a button whose callback data starts with `button`."""

    async def find() -> Json | None:
        for message in reversed(await emu.bot_messages(chat)):
            if text is not None and text not in content(message):
                continue
            if button is not None and not has_button(message, button):
                continue
            return message
        return None

    return await eventually(find, within)  # type: ignore[no-any-return]


async def current(emu: TelegramEmulator, chat: int, message_id: int) -> Json | None:
    """A bot message as it is now (after edits), None once deleted."""
    for message in await emu.bot_messages(chat):
        if message["message_id"] == message_id:
            return message
    return None


async def press(emu: TelegramEmulator, user: int, message: Json, prefix: str) -> str:
    """Press the first button of `message` whose callback data starts with `prefix`; returns
    the callback query id."""
    data = next(
        b["callback_data"] for b in buttons(message) if b["callback_data"].startswith(prefix)
    )
    return await emu.press_button(user, message["message_id"], data=data)


async def start_training(
    emu: TelegramEmulator, user: int, message: Json, preset: str = "quality"
) -> Json:
    """Press "Start training" on `message` (the photo counter, the avatar's details), then
    the `preset` on the confirmation card; returns the card as it was shown."""
    await press(emu, user, message, "training:start")
    card = await bot_message(emu, user, text="Choose the quality", button="training:go")
    data = next(
        b["callback_data"]
        for b in buttons(card)
        if b["callback_data"].startswith(f"training:go_{preset}:")
    )
    await emu.press_button(user, card["message_id"], data=data)
    return card


async def answer_of(emu: TelegramEmulator, chat: int, query_id: str) -> Json:
    """The bot's answerCallbackQuery to a press (see `press`)."""

    async def find() -> Json | None:
        for entry in (await emu.transcript(chat))["callback_answers"]:
            if entry["id"] == query_id and entry["answer"] is not None:
                return entry["answer"]  # type: ignore[no-any-return]
        return None

    return await eventually(find)  # type: ignore[no-any-return]


def forge_press(
    emu: TelegramEmulator, user: int, message_id: int, data: str, chat: int | None = None
) -> str:
    """A callback query with any data on a message of `chat` (the user's private chat by
    default), as a hostile client could send it; returns its id."""
    world = emu.world
    chat_id = user if chat is None else chat
    query_id = str(secrets.randbits(62))
    query: Json = {
        "id": query_id,
        "from": world.users[user],
        "message": world.messages[chat_id][message_id].message,
        "chat_instance": "1",
        "data": data,
    }
    world.callbacks[query_id] = CallbackRecord(query, chat_id, time.monotonic())
    world.push_update("callback_query", query)
    return query_id


def file_bytes(emu: TelegramEmulator, file_id: str) -> bytes:
    """The content of a file the bot sent (a photo's or document's file_id)."""
    stored = emu.world.files.get(file_id)
    assert stored is not None
    return stored.data


#: The caption a training check's test portrait starts with (`check.portrait`, en and ru).
TEST_PORTRAIT = ("Test portrait", "Пробный портрет")


async def album_pictures(emu: Any, chat: int) -> list[Json]:
    """The album pictures in the chat that the user asked for: every media-group message but
    a training check's test portraits (`training/check_delivery.py`)."""
    return [
        m
        for m in await emu.bot_messages(chat)
        if m.get("media_group_id") and not (m.get("caption") or "").startswith(TEST_PORTRAIT)
    ]


def photo(seed: int, size: int = 640) -> bytes:
    """A distinct real photo of one person per seed (0-20, then again), `size` px on the
    short side: the photo gate accepts a set of them (`tests/faces.py`)."""
    return faces.person(seed % faces.DISTINCT, short=size)


# --- playing the other services ---------------------------------------------------------------


async def publish(js: JetStreamContext, event: Event) -> None:
    """Publish an event as a service would (deduplicated by its event id)."""
    await js.publish(event.subject, encode(event), headers={"Nats-Msg-Id": event.event_id})


async def consumed(js: JetStreamContext, spec: ConsumerSpec, seq: int) -> None:
    """Wait until the consumer `spec` (one of the bot's) has acknowledged everything up to
    stream sequence `seq`; it may not exist yet while the bot starts."""

    async def done() -> bool:
        try:
            info = await js.consumer_info(spec.stream, spec.durable)
        except NotFoundError:
            return False
        return bool(info.ack_floor.stream_seq >= seq and info.num_ack_pending == 0)

    await eventually(done, within=15)


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


async def open_generation_settings(emu: TelegramEmulator, uid: int) -> Json:
    """/start → Generate → the (only) avatar → Business → Corporate headshot: the settings
    screen, 2 pictures by default, with its "Generate" button."""
    await emu.send_command(uid, "start")
    menu = await bot_message(emu, uid, button="gen:home")
    await press(emu, uid, menu, "gen:home")
    picker = await bot_message(emu, uid, button="gen:avatar:")
    await press(emu, uid, picker, "gen:avatar:")
    source = await bot_message(emu, uid, button="gcat:business")
    await press(emu, uid, source, "gcat:business")
    styles = await bot_message(emu, uid, button="gsty:headshot")
    await press(emu, uid, styles, "gsty:headshot")
    return await bot_message(emu, uid, text="Pictures: 2", button="gen:go")
