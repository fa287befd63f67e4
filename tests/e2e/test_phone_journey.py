"""The journey as a phone sees it, on the whole product (`sandbox.stack.Stack`) under the
emulator's default flood limits: 3 messages at once, then 1 a second per chat, edits counted.

What a phone shows is what the emulator records: whether a message is new or an edit (its
`history`), whether it was sent with `disable_notification` (`notified`), where it sits in
the chat (`World.below`), and the 429s and "message is not modified" it answered.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import nats
import pytest
import pytest_asyncio
from PIL import Image
from pillow_heif import register_heif_opener

from contracts.jetstream import OBJ_IMAGES
from sandbox.stack import Stack
from sandbox.telegram import TelegramEmulator
from tests.botkit import (
    bot_message,
    eventually,
    open_generation_settings,
    press,
    start_training,
)
from tests.conftest import create_database
from tests.e2e.services import whole_product
from tests.e2e.test_product import photo, rule_violations

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
register_heif_opener()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def product(pg_admin_url, migrated_template, tmp_path_factory) -> AsyncIterator[Stack]:
    db_url = await create_database(pg_admin_url, template=migrated_template)
    state = tmp_path_factory.mktemp("stack")
    async with whole_product(db_url, state, training_seconds=3.0, CREDITS_TRIAL="200") as stack:
        assert stack.telegram is not None
        limits = stack.telegram.world.limits
        assert (limits.enabled, limits.chat_burst, limits.chat_rate, limits.limit_edits) == (
            True,
            3.0,
            1.0,
            True,
        ), "the emulator's defaults are the strict per-chat limits"
        yield stack


def heic(i: int) -> bytes:
    """A HEIC file made here by pillow-heif from a sample picture (as an iPhone sends it)."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(photo(i))).save(buffer, "HEIF", quality=90)
    return buffer.getvalue()


def record(emu: TelegramEmulator, chat: int, message_id: int) -> Any:
    return emu.world.messages[chat][message_id]


def button(message: dict[str, Any], fragment: str) -> str:
    rows = message["reply_markup"]["inline_keyboard"]
    return next(b["callback_data"] for row in rows for b in row if fragment in b["text"])


async def new_avatar(emu: TelegramEmulator, uid: int, name: str, kind: str) -> dict[str, Any]:
    """/start → create → name → `kind` (its card shows the prices) → woman for a portrait;
    returns the message asking for photos."""
    await emu.send_command(uid, "start")
    menu = await bot_message(emu, uid, button="menu:create")
    await press(emu, uid, menu, "menu:create")
    await bot_message(emu, uid, text="How shall we call")
    await emu.send_text(uid, name)
    types = await bot_message(emu, uid, text="Choose the training type")
    await press(emu, uid, types, button(types, kind))
    if kind != "Portrait":
        return await bot_message(emu, uid, text="Now send")
    gender = await bot_message(emu, uid, text="Who is in the photos")
    await press(emu, uid, gender, button(gender, "Woman"))
    return await bot_message(emu, uid, text="Now send")


async def outcome_is_new(
    emu: TelegramEmulator, uid: int, outcome: dict[str, Any], live: int
) -> None:
    """The outcome is a message of its own, notified, with buttons, at the bottom; the live
    progress message it ends was closed (deleted), never turned into it."""
    entry = record(emu, uid, outcome["message_id"])
    assert entry.history == [], "the outcome must be a new message, not an edit"
    assert entry.notified, "an outcome is never sent with disable_notification"
    assert outcome["reply_markup"]["inline_keyboard"], "the outcome carries its buttons"
    assert outcome["message_id"] > live
    closed = record(emu, uid, live)

    async def is_closed() -> bool:
        return closed.deleted

    await eventually(is_closed, 10)
    assert closed.message["text"] != outcome["text"]


async def one_row(product: Stack, sql: str, *args: Any) -> asyncpg.Record:
    conn = await asyncpg.connect(product.db_url)  # type: ignore[attr-defined]
    try:
        row = await conn.fetchrow(sql, *args)
    finally:
        await conn.close()
    assert row is not None
    return row


async def stored_image(product: Stack, uid: int) -> tuple[str, bytes]:
    """The first delivered picture's id and its full-resolution bytes in the object store."""
    row = await one_row(
        product,
        "SELECT replace(i.id::text, '-', '') AS id, i.object_name FROM generated_images i"
        " JOIN generations g ON g.id = i.generation_id WHERE i.user_id = $1"
        " AND NOT g.training_check ORDER BY i.created_at, i.object_name LIMIT 1",
        uid,
    )
    nc = await nats.connect(product.urls["NATS"])
    try:
        store = await nc.jetstream().object_store(OBJ_IMAGES.name)
        data = (await store.get(row["object_name"])).data
    finally:
        await nc.close()
    return row["id"], bytes(data or b"")


async def test_journey_to_a_picture_under_strict_limits(product: Stack):
    """/start → avatar → 9 photos + 1 HEIC document → train → ready → generate → original:
    at most one 429 and no "message is not modified" in the whole journey."""
    emu = product.telegram
    assert emu is not None
    await emu.reset_violations()
    uid = (await emu.create_user("Phone", language_code="en"))["id"]
    await new_avatar(emu, uid, "Phone Ann", "Portrait")
    await emu.send_album(uid, [photo(400 + i) for i in range(9)])
    nine = await bot_message(emu, uid, text="9 of 10", within=30)
    assert not record(emu, uid, nine["message_id"]).notified, "a counter is chatter"
    await emu.send_document(uid, heic(409), "IMG_0409.HEIC", "image/heic")
    counter = await bot_message(emu, uid, text="You can start training now", within=30)

    await start_training(emu, uid, counter)
    ready = await bot_message(emu, uid, text="is ready", within=90)
    await outcome_is_new(emu, uid, ready, counter["message_id"])
    assert emu.world.below(uid, ready["message_id"]) == 0

    settings = await open_generation_settings(emu, uid)
    await press(emu, uid, settings, "gen:go")
    done = await bot_message(emu, uid, text="Ready: 2", button="img:doc:", within=90)
    assert record(emu, uid, done["message_id"]).notified
    originals = [b for row in done["reply_markup"]["inline_keyboard"] for b in row]
    originals = [b for b in originals if b["callback_data"].startswith("img:doc:")]
    assert len(originals) == 2, "one 'send original' per picture of the album"

    image_id, full = await stored_image(product, uid)
    data = next(b["callback_data"] for b in originals if b["callback_data"].endswith(image_id))
    await emu.press_button(uid, done["message_id"], data=data)

    async def document() -> dict[str, Any] | None:
        found = [m for m in await emu.bot_messages(uid) if "document" in m]
        return found[-1] if found else None

    sent = await eventually(document, 20)
    stored = emu.world.files.get(sent["document"]["file_id"])
    assert stored is not None
    assert stored.data == full, "the original is the stored full-resolution file"
    assert Image.open(io.BytesIO(full)).size == Image.open(io.BytesIO(stored.data)).size

    photos = await one_row(
        product,
        "SELECT count(*) AS n FROM photos p JOIN avatars a ON a.id = p.avatar_id"
        " WHERE a.user_id = $1",
        uid,
    )
    assert photos["n"] == 10, "the HEIC document was accepted as the tenth photo"

    counts = await emu.violations()
    throttled = sum(n for kind, n in counts.items() if kind.startswith("rate_limit_"))
    assert throttled <= 1, counts
    assert counts.get("not_modified", 0) == 0, counts
    assert await rule_violations(emu) == {}


async def test_a_failed_training_is_told_in_a_new_message(product: Stack):
    emu, fal = product.telegram, product.fal
    assert emu is not None
    assert fal is not None
    uid = (await emu.create_user("Failing", language_code="en"))["id"]
    await new_avatar(emu, uid, "Failing Ann", "Style")
    await emu.send_album(uid, [photo(500 + i) for i in range(10)])
    counter = await bot_message(emu, uid, text="You can start training now", within=30)
    avatar = await one_row(product, "SELECT trigger_word FROM avatars WHERE user_id = $1", uid)
    fal.add_fault("job_failed", contains=avatar["trigger_word"], times=1)
    await start_training(emu, uid, counter)
    failed = await bot_message(emu, uid, text="failed", button="training:retry", within=90)
    await outcome_is_new(emu, uid, failed, counter["message_id"])
    closed = record(emu, uid, counter["message_id"])
    assert closed.deleted
    assert not closed.notified, "the counter that became the progress message was chatter"
    assert await rule_violations(emu) == {}


async def test_a_payment_is_told_in_a_new_notified_message_with_buttons(product: Stack):
    emu = product.telegram
    assert emu is not None
    uid = (await emu.create_user("Buyer", language_code="en"))["id"]
    await emu.send_command(uid, "buy")
    shop = await bot_message(emu, uid, button="shop:buy:")
    await press(emu, uid, shop, "shop:buy:")

    async def invoice() -> dict[str, Any] | None:
        return next((m for m in await emu.bot_messages(uid) if "invoice" in m), None)

    paid = await emu.payments.pay(chat_id=uid, message_id=(await eventually(invoice))["message_id"])
    assert paid["status"] == "paid", paid
    told = await bot_message(emu, uid, text="Payment received", within=20)
    entry = record(emu, uid, told["message_id"])
    assert entry.history == []
    assert entry.notified
    assert told["reply_markup"]["inline_keyboard"]
    assert told["message_id"] > paid["message_id"]
