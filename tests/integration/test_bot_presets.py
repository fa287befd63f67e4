"""Prices up front, style avatars without a gender, and the quality preset picked on the
confirmation card (issue 21 items 3–5), through real updates to the real dispatcher.

The bot runs with the default prices (speed 30, quality 50, high-res 60, a picture 1; a
trial of 10 credits); what FAL receives for each preset is in `tests/e2e/test_presets.py`.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from nats.js import JetStreamContext

from contracts import FalPriority, TrainingRequested
from sandbox.telegram import TelegramEmulator
from services.bot.app.pricing import Pricing
from services.kit import credits
from tests.botkit import (
    BotUnderTest,
    Json,
    answer_of,
    bot_message,
    buttons,
    events_of,
    eventually,
    forge_press,
    photo,
    press,
)

PRICING = Pricing()
PRICE = {p: PRICING.training_price(p) for p in FalPriority}


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    return {"pricing": PRICING, "min_photos": 3}


async def requested(js: JetStreamContext, avatar_id: str) -> list[TrainingRequested]:
    return await events_of(
        js, "aisha.avatar.training_requested", TrainingRequested, avatar_id=avatar_id
    )


async def grant(pool: asyncpg.Pool, uid: int, amount: int) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await credits.post(conn, user_id=uid, kind=credits.Kind.ADMIN_GRANT, amount=amount,
                           key=f"test_grant:{uuid.uuid4()}")  # fmt: skip


async def seed_ready(pool: asyncpg.Pool, uid: int, training_type: str = "portrait") -> str:
    await pool.execute(
        "INSERT INTO users (id, first_name, language) VALUES ($1, 'U', 'en') "
        "ON CONFLICT DO NOTHING",
        uid,
    )
    gender = None if training_type == "style" else "female"
    avatar_id = await pool.fetchval(
        "INSERT INTO avatars (user_id, name, gender, training_type, trigger_word, status,"
        " photo_count) VALUES ($1, 'Seeded', $2, $3, 'ohwxtest', 'ready', 10) RETURNING id",
        uid, gender, training_type,
    )  # fmt: skip
    return str(avatar_id)


async def card_of(emu: TelegramEmulator, uid: int) -> Json:
    """/start → My avatars → the avatar → Start training: the confirmation card."""
    await emu.send_command(uid, "start")
    menu = await bot_message(emu, uid, button="menu:avatars")
    await press(emu, uid, menu, "menu:avatars")
    await press(emu, uid, await bot_message(emu, uid, button="avatar:view"), "avatar:view")
    details = await bot_message(emu, uid, text="Status:", button="training:start")
    await press(emu, uid, details, "training:start")
    return await bot_message(emu, uid, text="Choose the quality", button="training:go")


def preset_data(card: Json, priority: FalPriority) -> str:
    return next(
        b["callback_data"]
        for b in buttons(card)
        if b["callback_data"].startswith(f"training:go_{priority.value}:")
    )


async def test_prices_balance_and_a_buy_button_come_before_any_photo_is_asked_for(
    emu: TelegramEmulator, bot: BotUnderTest
) -> None:
    uid = (await emu.create_user("Anna", language_code="en"))["id"]
    await emu.send_command(uid, "start")
    menu = await bot_message(emu, uid, button="menu:create")
    assert "An avatar training costs 30–60 credits (by quality), a picture 1." in menu["text"]
    assert "Your balance: 10 credits" in menu["text"]  # the trial

    await press(emu, uid, menu, "menu:create")
    await bot_message(emu, uid, text="name")
    await emu.send_text(uid, "Anna")
    card = await bot_message(emu, uid, button="training_type:pick")
    assert "speed 30 · ⭐ quality 50 · 🔍 high-res 60 credits" in card["text"]
    assert "Your balance: 10 credits" in card["text"]
    assert not any("Now send" in m.get("text", "") for m in await emu.bot_messages(uid))

    # the buy button opens the shop below; the card stays, and its choice still works
    await press(emu, uid, card, "shop:show")
    shop = await bot_message(emu, uid, text="Balance: 10 credits", button="shop:buy:")
    assert shop["message_id"] != card["message_id"]
    labels = [b["text"] for b in buttons(shop) if b["callback_data"].startswith("shop:buy:")]
    assert labels == [
        "Starter: 20 credits · ⭐ 50",
        "Standard: 100 credits · ⭐ 200",
        "Pro: 300 credits · ⭐ 500",
    ]
    await press(emu, uid, card, "training_type:pick:portrait")
    await bot_message(emu, uid, text="Who is in the photos", button="gender:")


async def test_a_style_avatar_is_never_asked_for_a_gender_and_trains_as_a_style(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool
) -> None:
    uid = (await emu.create_user("Vera", language_code="en"))["id"]
    await emu.send_command(uid, "new")
    await bot_message(emu, uid, text="name")
    await emu.send_text(uid, "Watercolours")
    card = await bot_message(emu, uid, button="training_type:pick")
    await press(emu, uid, card, "training_type:pick:style")
    intro = await bot_message(emu, uid, text="pictures of the look")
    assert intro["message_id"] == card["message_id"]  # the card became the photo counter
    assert "Nobody needs to be in them" in intro["text"]
    assert not any(
        "Who is in" in m.get("text", "")
        or any(b["callback_data"].startswith("gender:") for b in buttons(m))
        for m in await emu.bot_messages(uid)
    )
    row = await admin_pool.fetchrow("SELECT * FROM avatars WHERE user_id = $1", uid)
    assert (row["training_type"], row["gender"]) == ("style", None)

    await emu.send_album(uid, [photo(seed) for seed in range(3)])
    counter = await bot_message(emu, uid, text="3 photos", button="training:start")
    await press(emu, uid, counter, "training:start")
    confirm = await bot_message(emu, uid, text="Choose the quality", button="training:go")
    assert "Style · 3 photos" in confirm["text"]
    go = [b["text"] for b in buttons(confirm) if b["callback_data"].startswith("training:go")]
    assert go == ["⚡ Speed · 30 cr. · ~4 min", "⭐ Quality · 50 cr. · ~7 min"]  # no high-res
    # a forged high-res press for a style is refused, nothing requested
    forged = f"training:go_high_res_only:{row['id'].hex}"
    answer = await answer_of(emu, uid, forge_press(emu, uid, confirm["message_id"], forged))
    assert answer["text"] == "This quality is not available for this avatar."

    await press(emu, uid, confirm, "training:go")  # speed: 30 of the trial's 10 → refused
    refused = await bot_message(emu, uid, text="Not enough credits", button="shop:open")
    assert "costs 30, your balance is 10" in refused["text"]
    assert await requested(js, str(row["id"])) == []

    await grant(admin_pool, uid, 40)
    await press(emu, uid, confirm, "training:go")
    await bot_message(emu, uid, text="queue", button="training:cancel")
    events = await eventually(lambda: requested(js, str(row["id"])))
    assert [(e.training_type, e.priority, e.credits) for e in events] == [
        ("style", FalPriority.SPEED, 30)
    ]


@pytest.mark.parametrize("priority", list(FalPriority))
async def test_each_preset_is_shown_with_its_price_and_duration_and_quoted_at_it(
    emu: TelegramEmulator,
    bot: BotUnderTest,
    js: JetStreamContext,
    admin_pool: asyncpg.Pool,
    priority: FalPriority,
) -> None:
    uid = (await emu.create_user("Petr", language_code="en"))["id"]
    avatar_id = await seed_ready(admin_pool, uid)
    await grant(admin_pool, uid, 100)
    card = await card_of(emu, uid)
    for line in (
        "⚡ Speed — 30 credits, about 12 min",
        "⭐ Quality — 50 credits, about 20 min",
        "🔍 High-res — 60 credits, about 25 min",
        "Your balance: 100 credits",
    ):
        assert line in card["text"], line
    assert has_buy(card)
    await emu.press_button(uid, card["message_id"], data=preset_data(card, priority))
    await bot_message(emu, uid, text="queue", button="training:cancel")
    events = await eventually(lambda: requested(js, avatar_id))
    assert [(e.priority, e.credits) for e in events] == [(priority, PRICE[priority])]
    stored = await admin_pool.fetchval("SELECT fal_priority FROM avatars WHERE id = $1", avatar_id)
    assert stored == priority.value


def has_buy(message: Json) -> bool:
    return any(b["callback_data"] == "shop:show::0" for b in buttons(message))


async def test_stale_and_foreign_preset_presses_and_a_retry_keeping_the_preset(
    emu: TelegramEmulator, bot: BotUnderTest, js: JetStreamContext, admin_pool: asyncpg.Pool
) -> None:
    owner = (await emu.create_user("Owner", language_code="en"))["id"]
    thief = (await emu.create_user("Вор", language_code="ru"))["id"]
    avatar_id = await seed_ready(admin_pool, owner)
    await grant(admin_pool, owner, 200)
    card = await card_of(emu, owner)

    await emu.send_command(thief, "start")
    theirs = await bot_message(emu, thief, button="menu:create")
    hex_id = uuid.UUID(avatar_id).hex
    for data in (f"training:go_speed:{hex_id}", f"training:start:{hex_id}"):
        answer = await answer_of(emu, thief, forge_press(emu, thief, theirs["message_id"], data))
        assert answer["text"] == "Аватар не найден."

    await emu.press_button(
        owner, card["message_id"], data=preset_data(card, FalPriority.HIGH_RES_ONLY)
    )
    await bot_message(emu, owner, text="queue", button="training:cancel")
    # the card pressed again from an old copy (another preset): already training, one request
    stale = forge_press(emu, owner, card["message_id"], preset_data(card, FalPriority.SPEED))
    assert (await answer_of(emu, owner, stale))["text"] == "Training is already running."
    events = await eventually(lambda: requested(js, avatar_id))
    assert [e.priority for e in events] == [FalPriority.HIGH_RES_ONLY]

    # failed → retry keeps the chosen preset and its price
    await admin_pool.execute("UPDATE avatars SET status = 'error' WHERE id = $1", avatar_id)
    retry = f"training:retry:{hex_id}"
    await answer_of(emu, owner, forge_press(emu, owner, card["message_id"], retry))

    async def two() -> list[TrainingRequested] | None:
        found = await requested(js, avatar_id)
        return found if len(found) == 2 else None

    second = (await eventually(two))[1]
    assert (second.attempt, second.priority, second.credits) == (2, FalPriority.HIGH_RES_ONLY, 60)
