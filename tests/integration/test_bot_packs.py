"""Packs in the bot: real aiogram polling the Telegram emulator, real NATS and PostgreSQL.

The test plays the trainer and the status service (it reads `GenerationRequested` and
answers with the status service's events). A pack pressed is charged once for its total,
requests one generation per style at no charge of its own, and delivers each as it
completes; a double press charges once; a failed or withheld picture is refunded per picture,
once; a balance too small charges nothing and requests nothing.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import asyncpg
import pytest
from nats.js import JetStreamContext
from nats.js.object_store import ObjectStore

from contracts import (
    FailureReason,
    GenerationFailed,
    GenerationRequested,
    new_event_id,
    utcnow,
)
from sandbox.telegram import TelegramEmulator
from services.bot.app.pricing import Pricing
from services.bot.app.texts import Texts, Translator
from services.kit import credits
from tests.botkit import (
    BotUnderTest,
    answer_of,
    bot_message,
    current,
    events_of,
    eventually,
    has_button,
    press,
    publish,
)
from tests.integration import generation_harness as harness
from tests.integration.generation_harness import TRIGGER, complete, seed_avatar

images_store = harness.images_store  # the harness's fixture, used by name

PER_IMAGE = 5
EN = Translator(Texts.load(), "en")
REQUESTED = "aisha.generation.requested"
FANTASY = ("elf", "knight", "astronaut", "cyberpunk")


def shown(key: str, **params: object) -> str:
    """A locale text as the chat shows it (HTML tags parsed away)."""
    return re.sub(r"<[^>]+>", "", EN.plain(key, **params))


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    """Priced pictures; no trial, so balances are exact."""
    return {"pricing": Pricing(training=50, per_image=PER_IMAGE, trial=0)}


async def grant(pool: asyncpg.Pool, uid: int, amount: int) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await credits.post(
            conn, user_id=uid, kind=credits.Kind.ADMIN_GRANT, amount=amount,
            key=f"test_grant:{uuid.uuid4()}",
        )  # fmt: skip


async def entries(pool: asyncpg.Pool, uid: int, kind: str) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT idempotency_key, amount, reason FROM credit_entries "
        "WHERE user_id = $1 AND kind = $2::credit_kind ORDER BY seq",
        uid, kind,
    )  # fmt: skip
    return rows


async def open_fantasy_card(emu: TelegramEmulator, uid: int) -> dict[str, Any]:
    """/start → 🎁 Packs → Fantasy: the card with its price, before any press that costs."""
    await emu.send_command(uid, "start")
    menu = await bot_message(emu, uid, button="pk:list")
    await press(emu, uid, menu, "pk:list")
    listing = await bot_message(emu, uid, button="pk:show:fantasy")
    assert any(
        b["text"] == EN.plain("packs.list_button", title="🐉 Fantasy", count=4, price=20)
        for row in listing["reply_markup"]["inline_keyboard"]
        for b in row
    )
    await press(emu, uid, listing, "pk:show:fantasy")
    card: dict[str, Any] = await bot_message(emu, uid, text="4 pictures × 5", button="pkgo:")
    return card


async def pack_requests(js: JetStreamContext, uid: int, count: int) -> list[GenerationRequested]:
    async def find() -> list[GenerationRequested] | None:
        found = await events_of(js, REQUESTED, GenerationRequested, user_id=uid)
        return found if len(found) >= count else None

    requests: list[GenerationRequested] = await eventually(find)
    return requests


async def test_a_pack_is_charged_once_delivered_as_it_arrives_and_refunded_per_lost_picture(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool,
    images_store: ObjectStore,
) -> None:  # fmt: skip
    uid = (await emu.create_user("Anna"))["id"]
    avatar_id = await seed_avatar(admin_pool, uid)
    await grant(admin_pool, uid, 100)
    card = await open_fantasy_card(emu, uid)
    assert "20 credits" in card["text"]
    assert "balance: 100" in card["text"]

    # A double press of the card's button: two presses before the bot answered either.
    first = await press(emu, uid, card, "pkgo:fantasy:")
    second = await press(emu, uid, card, "pkgo:fantasy:")
    ordered = await bot_message(emu, uid, text="4 pictures are on their way")
    assert ordered["message_id"] == card["message_id"]
    assert not has_button(ordered, "pkgo:")
    answers = {(await answer_of(emu, uid, q)).get("text") for q in (first, second)}
    assert answers == {EN.plain("packs.started", count=4), EN.plain("packs.already")}

    [charge] = await entries(admin_pool, uid, "generation_charge")
    assert charge["amount"] == -20
    assert charge["idempotency_key"].startswith("charge:pack:")
    assert await credits.balance(admin_pool, uid) == 80
    rows = await admin_pool.fetch(
        "SELECT id, style_id, num_images, pack_order_id, prompt, avatar_id FROM generations "
        "WHERE user_id = $1 ORDER BY style_id",
        uid,
    )
    assert sorted(r["style_id"] for r in rows) == sorted(FANTASY)
    assert {str(r["pack_order_id"]) for r in rows} == {charge["idempotency_key"][12:]}
    assert all(TRIGGER in r["prompt"] and str(r["avatar_id"]) == avatar_id for r in rows)
    requests = await pack_requests(js, uid, 4)
    assert len(requests) == 4
    assert {e.credits for e in requests} == {0}

    by_style = {r["style_id"]: str(r["id"]) for r in rows}
    # Delivered as it arrives: the elf's picture first, as a photo captioned with its style.
    await complete(js, admin_pool, images_store, by_style["elf"], [(10, 200, 10)])
    elf = await bot_message(emu, uid, text="🎨")
    assert elf.get("photo")
    assert "Elven ranger" in elf["caption"]
    # The knight's one picture withheld: its price comes back, said under the result.
    await complete(js, admin_pool, images_store, by_style["knight"], [(1, 2, 3)], nsfw=(0,))
    await bot_message(emu, uid, text=shown("packs.refunded_part", credits=PER_IMAGE))
    # The astronaut fails (not the user's doing): its picture comes back too, once.
    failed = GenerationFailed(
        event_id=new_event_id(), occurred_at=utcnow(), generation_id=by_style["astronaut"],
        user_id=uid, reason=FailureReason.FAL_ERROR,
    )  # fmt: skip
    await publish(js, failed)
    await bot_message(emu, uid, text=shown("generate.failure.fal_error"))
    again = GenerationFailed(**{**_fields(failed), "event_id": new_event_id()})
    await publish(js, again)
    await complete(js, admin_pool, images_store, by_style["cyberpunk"], [(9, 9, 9)])
    await eventually(lambda: _status(admin_pool, by_style["cyberpunk"], "completed"))

    refunds = await entries(admin_pool, uid, "refund")
    assert sorted(r["amount"] for r in refunds) == [PER_IMAGE, PER_IMAGE]
    assert {r["idempotency_key"].rsplit(":", 1)[1] for r in refunds} == {
        by_style["knight"], by_style["astronaut"],
    }  # fmt: skip
    assert await credits.balance(admin_pool, uid) == 90
    assert len(await entries(admin_pool, uid, "generation_charge")) == 1
    # /balance names what the entries were for, never the order's bare id.
    await emu.send_command(uid, "balance")
    history = await bot_message(emu, uid, text="Balance: 90 credits")
    assert charge["idempotency_key"][12:] not in history["text"]
    assert EN.plain("credits.kind_generation_charge") in history["text"]


async def test_a_balance_too_small_is_answered_with_a_buy_button_and_charges_nothing(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool
) -> None:
    uid = (await emu.create_user("Boris"))["id"]
    await seed_avatar(admin_pool, uid, name="Boris")
    await grant(admin_pool, uid, 15)
    card = await open_fantasy_card(emu, uid)
    await press(emu, uid, card, "pkgo:fantasy:")
    refused = await bot_message(emu, uid, text=shown("credits.not_enough", price=20, balance=15))
    assert has_button(refused, "shop:open")
    assert await current(emu, uid, card["message_id"]) == card  # the card stays as it was
    assert await entries(admin_pool, uid, "generation_charge") == []
    assert await credits.balance(admin_pool, uid) == 15
    count = "SELECT count(*) FROM generations WHERE user_id = $1"
    assert await admin_pool.fetchval(count, uid) == 0
    assert await events_of(js, REQUESTED, GenerationRequested, user_id=uid) == []


def _fields(event: GenerationFailed) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__struct_fields__}


async def _status(pool: asyncpg.Pool, generation_id: str, status: str) -> bool:
    value = await pool.fetchval(
        "SELECT status::text FROM generations WHERE id = $1", uuid.UUID(generation_id)
    )
    return bool(value == status)
