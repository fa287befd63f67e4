"""What the hostile suite shares (the bot and the clicking are tests/botkit.py's): a hostile
client, hostile files, and the three things every case asserts — a reply, no error logged, no
rows changed.

The "hostile client" pushes updates into the Telegram emulator's world directly, the way a
modified client (or Telegram itself, for group chats) could send them: arbitrary callback
data, photos that are not images, messages from chats the emulator's control API does not
create.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import secrets
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from aiogram.filters.callback_data import CallbackData
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

import services.bot as bot_package
from contracts.jetstream import OBJ_IMAGES, OBJ_PHOTOS
from sandbox.telegram import TelegramEmulator
from services.kit import loras
from tests import botkit
from tests.botkit import buttons, eventually

# tests/integration/test_secrets_scan.py imports it from here
from tests.botkit import press as press

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
    "reference_photos": "user_id = $1",
}


class ErrorLog(logging.Handler):
    """Collects ERROR records (the error handler's "update failed", a dead task...)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        """One line per record, with the exception that caused it (what a reviewer needs)."""
        return [
            f"{r.name}: {r.getMessage()}"
            + (f" [{type(r.exc_info[1]).__name__}: {r.exc_info[1]}]" if r.exc_info else "")
            for r in self.records
        ]


def callback_factories() -> list[type[CallbackData]]:
    """Every CallbackData subclass defined in services.bot.* (new ones included)."""
    for module in pkgutil.walk_packages(bot_package.__path__, f"{bot_package.__name__}."):
        importlib.import_module(module.name)
    found, todo = [], list(CallbackData.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith(f"{bot_package.__name__}."):
            found.append(cls)
    return sorted(found, key=lambda c: c.__prefix__)


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


async def answer_of(emu: TelegramEmulator, query_id: str, within: float = 10.0) -> Json:
    """The bot's answerCallbackQuery for one query (text may be empty)."""

    async def find() -> Json | None:
        record = emu.world.callbacks.get(query_id)
        return record.answer if record is not None else None

    return await eventually(find, within)  # type: ignore[no-any-return]


def forge_message(
    emu: TelegramEmulator, user: int, chat: Json | None = None, **content: Any
) -> Json:
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
    return botkit.photo(seed, size)


def png_bomb(width: int, height: int, *, rgb: bool = False) -> bytes:
    """A genuine PNG (1-bit gray, or 8-bit RGB) of width×height white pixels: tens of KB on
    disk, hundreds of millions of pixels once decoded. Compressed in blocks of rows, so
    making it is cheap."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    depth, color, row_bytes = (8, 2, width * 3) if rgb else (1, 0, (width + 7) // 8)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    packer = zlib.compressobj(6)
    block = (b"\x00" + b"\xff" * row_bytes) * 1000
    full, rest = divmod(height, 1000)
    parts = [packer.compress(block) for _ in range(full)]
    parts.append(packer.compress(block[: len(block) // 1000 * rest]))
    idat = b"".join(parts) + packer.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@dataclass(frozen=True)
class Seeded:
    """One user's data as the services would have left it (ids to aim hostile input at)."""

    user_id: int
    avatar_id: UUID
    training_avatar_id: UUID
    generation_id: UUID
    image_id: UUID
    share_token: str
    revoked_token: str
    photo_objects: tuple[str, ...]
    image_objects: tuple[str, ...]
    #: Our copy of the completed avatar's LoRA and its config (`kit.loras`).
    lora_objects: tuple[str, ...] = ()


async def seed_avatar(
    pool: asyncpg.Pool,
    js: JetStreamContext,
    uid: int,
    status: str,
    *,
    finished_hours_ago: float | None = None,
    keep_photos: bool = False,
    photos: int = 2,
) -> tuple[UUID, list[str]]:
    """An avatar with `photos` stored training photos (rows and files) of a user whose row
    exists; `finished_hours_ago` sets `training_finished_at` (None: not finished)."""
    store = await js.object_store(OBJ_PHOTOS.name)
    avatar: UUID = await pool.fetchval(
        "INSERT INTO avatars (user_id, name, gender, trigger_word, status, photo_count, "
        "training_attempt, keep_photos, training_finished_at) VALUES ($1, $6, 'female', "
        "'ohwxseed', $2, $3, 1, $4, now() - $5 * interval '1 hour') RETURNING id",
        uid,
        status,
        photos,
        keep_photos,
        finished_hours_ago,
        status.title(),
    )
    names = []
    for i in range(photos):
        name = f"{avatar}/{uuid4()}.jpg"
        await store.put(name, photo(100 + i))
        await pool.execute(
            "INSERT INTO photos (avatar_id, user_id, object_name, sha256, status) "
            "VALUES ($1, $2, $3, $4, 'accepted')",
            avatar,
            uid,
            name,
            f"sha-{avatar}-{i}",
        )
        names.append(name)
    return avatar, names


async def seed_user_data(pool: asyncpg.Pool, js: JetStreamContext, uid: int) -> Seeded:
    """A completed avatar with 2 stored photos (trained 2 h ago), an avatar in training, a
    generation with one stored image, an active and a revoked share link."""
    images = await js.object_store(OBJ_IMAGES.name)
    await pool.execute(
        "INSERT INTO users (id, first_name, language) VALUES ($1, 'Victim', 'en') "
        "ON CONFLICT DO NOTHING",
        uid,
    )
    avatar, photo_objects = await seed_avatar(pool, js, uid, "completed", finished_hours_ago=2)
    training, _ = await seed_avatar(pool, js, uid, "training", photos=0)
    generation = await pool.fetchval(
        "INSERT INTO generations (user_id, avatar_id, prompt, aspect_ratio, num_images, seed, "
        "status) VALUES ($1, $2, 'a portrait', '1:1', 1, 7, 'completed') RETURNING id",
        uid,
        avatar,
    )
    image_object = f"gen/{generation}/0.jpg"
    await images.put(image_object, photo(200))
    image = await pool.fetchval(
        "INSERT INTO generated_images (generation_id, user_id, position, object_name, width, "
        "height, content_type) VALUES ($1, $2, 0, $3, 600, 600, 'image/jpeg') RETURNING id",
        generation,
        uid,
        image_object,
    )
    lora_object = loras.weights_name(str(avatar), 1)
    lora_objects = tuple(loras.object_names(lora_object))
    for name in lora_objects:
        await images.put(name, b"AISHA-LORA" + name.encode())
    await pool.execute("UPDATE avatars SET lora_object_key = $2 WHERE id = $1", avatar, lora_object)
    token, revoked = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    await pool.execute(
        "INSERT INTO share_links (token, image_id, user_id, revoked_at) VALUES "
        "($1, $3, $4, NULL), ($2, $3, $4, now())",
        token,
        revoked,
        image,
        uid,
    )
    return Seeded(
        uid, avatar, training, generation, image, token, revoked, tuple(photo_objects),
        (image_object,), lora_objects,
    )  # fmt: skip


async def live_objects(js: JetStreamContext, bucket: str) -> set[str]:
    store = await js.object_store(bucket)
    try:
        infos = await store.list(ignore_deletes=True)
    except NotFoundError:
        return set()
    return {i.name for i in infos if not i.deleted}
