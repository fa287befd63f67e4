"""What the hostile suite shares: the bot as a task, a hostile client, hostile files, and the
three things every case asserts — a reply, no error logged, no rows changed.

The "hostile client" pushes updates into the Telegram emulator's world directly, the way a
modified client (or Telegram itself, for group chats) could send them: arbitrary callback
data, photos that are not images, messages from chats the emulator's control API does not
create.
"""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from PIL import Image, ImageDraw

from sandbox.telegram import TelegramEmulator
from sandbox.telegram.state import CallbackRecord
from services.bot import bootstrap
from services.bot.config import BotConfig

Json = dict[str, Any]
#: Columns that legitimately move on every update (the user was seen again).
VOLATILE = frozenset({"last_seen_at", "updated_at"})
#: Tables holding a user's data, with the condition that selects that user's rows.
USER_TABLES = {
    "users": "id = $1",
    "avatars": "user_id = $1",
    "photos": "user_id = $1",
    "generations": "user_id = $1",
    "generated_images": "user_id = $1",
    "share_links": "user_id = $1",
}


class BotTask:
    """`bootstrap.run` as a task, stopped like a process receiving SIGTERM."""

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


class ErrorLog(logging.Handler):
    """Collects ERROR records (the error handler's "update failed", a dead task...)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records]


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    """Poll `check` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.03)


def buttons(message: Json) -> list[Json]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [b for row in rows for b in row]


def last_id(emu: TelegramEmulator, chat: int) -> int:
    """The newest message id in a chat (0 if none): later waits look only past it."""
    return max(emu.world.messages.get(chat, {}), default=0)


async def reply(
    emu: TelegramEmulator,
    chat: int,
    text: str | None = None,
    *,
    after: int = 0,
    button: str | None = None,
    within: float = 10.0,
) -> Json:
    """Wait for a bot message newer than `after` (or one edited since) matching text/button."""

    async def find() -> Json | None:
        for record in sorted(emu.world.messages.get(chat, {}).values(), key=_newest, reverse=True):
            message = record.message
            fresh = message["message_id"] > after or bool(record.history)
            if not record.outgoing or record.deleted or not fresh:
                continue
            if text is not None and text not in (message.get("text") or ""):
                continue
            if button is not None and not any(
                b.get("callback_data", "").startswith(button) for b in buttons(message)
            ):
                continue
            return message
        return None

    return await eventually(find, within)  # type: ignore[no-any-return]


def _newest(record: Any) -> int:
    return int(record.message["message_id"])


async def press(emu: TelegramEmulator, user: int, message: Json, prefix: str) -> str:
    data = next(b["callback_data"] for b in buttons(message) if b["callback_data"].startswith(prefix))
    return await emu.press_button(user, message["message_id"], data=data)


def forge_press(emu: TelegramEmulator, user: int, message_id: int, data: str) -> str:
    """A callback query with any data on any message of the chat (a hostile client)."""
    world = emu.world
    query = {
        "id": str(secrets.randbits(62)),
        "from": world.users[user],
        "message": world.messages[user][message_id].message,
        "chat_instance": "1",
        "data": data,
    }
    world.callbacks[query["id"]] = CallbackRecord(query, user, time.monotonic())
    world.push_update("callback_query", query)
    return str(query["id"])


async def answer_of(emu: TelegramEmulator, query_id: str, within: float = 10.0) -> Json:
    """The bot's answerCallbackQuery for one query (text may be empty)."""

    async def find() -> Json | None:
        record = emu.world.callbacks.get(query_id)
        return record.answer if record is not None else None

    return await eventually(find, within)  # type: ignore[no-any-return]


def forge_message(emu: TelegramEmulator, user: int, chat: Json | None = None, **content: Any) -> Json:
    """A message from `user` in `chat` (their private chat by default), delivered even if
    the emulator's control API would refuse to produce it."""
    world = emu.world
    chat = chat or world.chats[user]
    message = {
        "message_id": world.next_message_id(chat["id"]),
        "from": world.users[user],
        "chat": chat,
        "date": int(time.time()),
        **content,
    }
    world.add_message(message, outgoing=False)
    world.push_update("message", message)
    return message


def forge_photo(emu: TelegramEmulator, user: int, data: bytes, size: tuple[int, int]) -> Json:
    """A `photo` whose file holds `data` as is (Telegram re-encodes photos; a forger need not)."""
    stored = emu.world.files._put(data, "photos", "image/jpeg", None, size, "AgAC")
    return forge_message(emu, user, photo=[stored.as_photo_size()])


async def new_user(emu: TelegramEmulator, name: str = "User", language: str = "en") -> int:
    """A user who has opened the bot (so their row exists before anything hostile)."""
    uid = int((await emu.create_user(name, language_code=language))["id"])
    await emu.send_command(uid, "start")
    await reply(emu, uid, button="menu:create")
    return uid


async def user_rows(pool: asyncpg.Pool, uid: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the user in every table, minus columns that move by merely being seen."""
    snapshot = {}
    for table, where in USER_TABLES.items():
        rows = await pool.fetch(f"SELECT * FROM {table} WHERE {where}", uid)
        snapshot[table] = sorted(
            tuple((k, str(v)) for k, v in sorted(dict(r).items()) if k not in VOLATILE)
            for r in rows
        )
    return snapshot


def photo(seed: int, size: int = 600) -> bytes:
    """A distinct JPEG per seed (different pixels, so different hashes)."""
    img = Image.new("RGB", (size, size), ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    ImageDraw.Draw(img).rectangle((seed * 7 % 300, 40, seed * 7 % 300 + 120, 200), fill=(9, 9, 9))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A genuine 1-bit PNG of width×height white pixels: tens of KB on disk, hundreds of
    millions of pixels once decoded. Compressed in blocks of rows, so making it is cheap."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grayscale
    packer = zlib.compressobj(9)
    block = (b"\x00" + b"\xff" * ((width + 7) // 8)) * 1000
    full, rest = divmod(height, 1000)
    parts = [packer.compress(block) for _ in range(full)]
    parts.append(packer.compress(block[: len(block) // 1000 * rest]))
    idat = b"".join(parts) + packer.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
