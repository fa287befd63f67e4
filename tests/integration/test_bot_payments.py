"""Telegram Stars end to end: the real bot (aiogram polling the emulator, real NATS and
PostgreSQL) sells credits — /buy → invoice → pre-checkout → successful_payment → ledger — and
refunds them. The emulated user pays through the emulator's payment actions, the same code
behind its `POST /_emu/pay` control endpoint.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from typing import Any

import asyncpg
import pytest

from sandbox.telegram import TelegramEmulator
from sandbox.telegram.state import STARTING_STARS, ChargeRecord
from services.bot.app.pricing import Pricing, parse_packages
from services.bot.app.texts import Texts
from services.bot.credits.invoices import InvoiceSigner, Offer
from services.kit import credits
from tests.botkit import (
    BotUnderTest,
    answer_of,
    bot_message,
    buttons,
    eventually,
    forge_press,
    press,
)

Json = dict[str, Any]
TOKEN = "123456:integration-test-token"  # botkit's bot token: tests sign payloads with it
#: Fixed here, not the defaults: these tests are about paying, and their amounts stay put.
#: Every package at 5 Stars a credit (coherent: a bigger one is never a worse rate); trial 10.
PRICING = Pricing(packages=parse_packages("images20:100:20,avatar:250:50,images100:500:100"))
TRIAL = PRICING.trial
TEXTS = Texts.load()


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    return {"pricing": PRICING}


async def newcomer(emu: TelegramEmulator, name: str = "Payer") -> int:
    return int((await emu.create_user(name, language_code="en"))["id"])


async def invoice(emu: TelegramEmulator, uid: int, package: str = "avatar") -> Json:
    """/buy, press the package, wait for the (new) invoice message."""
    before = {m["message_id"] for m in await emu.bot_messages(uid)}
    await emu.send_command(uid, "buy")
    shop = await bot_message(emu, uid, text="Balance", button=f"shop:buy:{package}")
    await press(emu, uid, shop, f"shop:buy:{package}:")

    async def find() -> Json | None:
        found = [m for m in await emu.bot_messages(uid) if m.get("invoice")]
        return found[-1] if found and found[-1]["message_id"] not in before else None

    message: Json = await eventually(find)
    return message


async def pay(emu: TelegramEmulator, uid: int, message: Json, **forged: Any) -> Json:
    return await emu.payments.pay(uid, message["message_id"], **forged)


async def balance(pool: asyncpg.Pool, uid: int) -> int:
    return await credits.balance(pool, uid)


async def star_payments(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM star_payments ORDER BY paid_at")


async def settled(emu: TelegramEmulator) -> None:
    """Every update the emulator queued has been fetched, and a moment to handle it."""
    await eventually(lambda: _no_pending(emu))
    await asyncio.sleep(0.5)


async def _no_pending(emu: TelegramEmulator) -> bool:
    return not await emu.pending_updates()


def texts_with(emu_messages: list[Json], fragment: str) -> list[Json]:
    return [m for m in emu_messages if fragment in (m.get("text") or "")]


# --- buying ---------------------------------------------------------------------------------


async def test_buy_pay_and_redelivered_payment_credits_once(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    uid = await newcomer(emu)
    message = await invoice(emu, uid)
    shop = await bot_message(emu, uid, text="Balance")
    assert f"Balance: {TRIAL} credits" in shop["text"]
    assert "costs 30–60 credits" in shop["text"]  # by quality preset
    # each package named on its button with what it buys; an id the locales do not name
    # goes by the id
    labels = [b["text"] for b in buttons(shop) if b["callback_data"].startswith("shop:buy:")]
    assert labels == [
        "Images20: 20 credits · ⭐ 100",
        "Avatar: 50 credits · ⭐ 250",
        "Images100: 100 credits · ⭐ 500",
    ]
    assert "Avatar — 50 credits for ⭐ 250: 1 × training (quality) or 50 × picture" in shop["text"]
    assert message["invoice"]["currency"] == "XTR"
    assert message["invoice"]["total_amount"] == 250
    assert message["invoice"]["title"] == "50 credits"

    result = await pay(emu, uid, message)
    assert result["status"] == "paid", result
    await bot_message(emu, uid, text="Payment received: +50 credits")
    assert await balance(admin_pool, uid) == TRIAL + 50
    [row] = await star_payments(admin_pool)
    charge = result["telegram_payment_charge_id"]
    assert (row["telegram_payment_charge_id"], row["user_id"]) == (charge, uid)
    assert (row["package_id"], row["stars"], row["credits"]) == ("avatar", 250, 50)
    purchase = await credits.entry(admin_pool, f"purchase:{charge}")
    assert purchase is not None
    assert purchase.kind is credits.Kind.PURCHASE

    # Telegram repeats the update (or the bot died after its commit): nothing more
    for _ in range(2):
        emu.payments.replay(charge)
    await settled(emu)
    assert await balance(admin_pool, uid) == TRIAL + 50
    assert len(await star_payments(admin_pool)) == 1
    assert len(texts_with(await emu.bot_messages(uid), "Payment received")) == 1

    await emu.send_command(uid, "balance")
    summary = await bot_message(emu, uid, text="purchase +50")
    assert f"Balance: {TRIAL + 50} credits" in summary["text"]
    assert "welcome gift +10" in summary["text"]


async def test_balance_names_the_avatar_and_the_package_not_their_ids(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    uid = await newcomer(emu)
    await bought(emu, uid, "images20")
    kept = await admin_pool.fetchval(
        "INSERT INTO avatars (user_id, name, gender, trigger_word, status, photo_count)"
        " VALUES ($1, 'Masha <3', 'female', 'ohwxbal', 'completed', 10) RETURNING id::text",
        uid,
    )
    gone = str(uuid.uuid4())  # an avatar deleted since it was trained
    async with admin_pool.acquire() as conn, conn.transaction():
        for avatar_id in (kept, gone):
            charge = credits.training_charge_key(avatar_id, 1)
            await credits.post(conn, user_id=uid, kind=credits.Kind.TRAINING_CHARGE, amount=-25,
                               key=charge, subject=avatar_id)  # fmt: skip
            if avatar_id == kept:
                await credits.refund(conn, charge_key=charge, reason="fal_error")

    await emu.send_command(uid, "balance")
    summary = await bot_message(emu, uid, text="returned +25")
    # "#seq date · kind amount → balance · note", newest first; the date is left out
    newest_first = [line.split(" · ", 1)[1] for line in summary["text"].splitlines()[-5:]]
    assert newest_first == [
        "avatar training -25 → 5 · avatar",
        "returned +25 → 30 · Masha <3",
        "avatar training -25 → 5 · Masha <3",
        "purchase +20 → 30 · ⭐ 100 → 20 credits",
        f"welcome gift +{TRIAL} → {TRIAL}",
    ]


async def test_the_main_menu_opens_the_shop(emu: TelegramEmulator, bot: BotUnderTest) -> None:
    uid = await newcomer(emu)
    await emu.send_command(uid, "start")
    menu = await bot_message(emu, uid, button="shop:open")
    await press(emu, uid, menu, "shop:open")
    shop = await bot_message(emu, uid, text=f"Balance: {TRIAL} credits", button="shop:buy:")
    assert shop["message_id"] == menu["message_id"]  # the menu turned into the shop


async def test_restart_between_commit_and_redelivery_credits_once(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    uid = await newcomer(emu)
    result = await pay(emu, uid, await invoice(emu, uid, "images20"))
    await bot_message(emu, uid, text="+20 credits")
    await bot.stop()
    emu.payments.replay(result["telegram_payment_charge_id"])
    await bot.start()
    await settled(emu)
    assert await balance(admin_pool, uid) == TRIAL + 20
    assert len(texts_with(await emu.bot_messages(uid), "Payment received")) == 1


def _declined(key: str) -> str:
    return TEXTS.plain("en", f"credits.declined_{key}")


async def test_pre_checkout_refuses_what_we_did_not_offer(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    uid = await newcomer(emu)
    other = await newcomer(emu, "Other")
    await emu.send_command(other, "start")
    message = await invoice(emu, uid)
    sign = InvoiceSigner(TOKEN).sign
    now = int(time.time())
    payload = emu.world.invoices[(uid, message["message_id"])].payload
    cases: list[tuple[str, dict[str, Any]]] = [
        ("forged", {"payload": payload[:-4] + "0000"}),
        ("forged", {"payload": f"v1.avatar.{uid}.250.5000.{now}.{'0' * 32}"}),
        ("forged", {"payload": "credits:50"}),
        ("wrong_user", {"user_id": other}),  # someone else pays my invoice
        ("unknown_package", {"payload": sign(Offer("gone", uid, 250, 50, now))}),
        ("wrong_amount", {"total_amount": 1}),
        # an invoice from when the package was cheaper
        (
            "wrong_amount",
            {"payload": sign(Offer("avatar", uid, 100, 50, now)), "total_amount": 100},
        ),
        ("stale", {"payload": sign(Offer("avatar", uid, 250, 50, now - 2 * 3600))}),
    ]
    for reason, forged in cases:
        result = await pay(emu, uid, message, **forged)
        assert result == {"status": "declined", "error_message": _declined(reason)}, reason
    # still payable as issued, and only that payment counts
    assert (await pay(emu, uid, message))["status"] == "paid"
    await bot_message(emu, uid, text="Payment received")
    assert await balance(admin_pool, uid) == TRIAL + 50
    assert await balance(admin_pool, other) == TRIAL
    assert len(await star_payments(admin_pool)) == 1
    assert emu.payments.balance(uid) == STARTING_STARS - 250
    assert emu.payments.balance(other) == STARTING_STARS


async def test_paid_invalid_payload_is_refunded_not_credited(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    """A successful_payment whose payload does not hold up (it cannot pass our pre-checkout,
    so the emulator's world is written directly) credits nothing; the Stars go back."""
    uid = await newcomer(emu)
    await emu.send_command(uid, "start")
    await bot_message(emu, uid, button="menu:")
    forged = InvoiceSigner("999:another-bot-token").sign(Offer("avatar", uid, 250, 50, 1))
    charge = _paid_without_asking(emu, uid, forged, 250)
    await bot_message(emu, uid, text="did not match any offer")
    assert emu.world.charges[charge].refunded
    assert emu.payments.balance(uid) == STARTING_STARS
    assert await balance(admin_pool, uid) == TRIAL
    assert await star_payments(admin_pool) == []


def _paid_without_asking(emu: TelegramEmulator, uid: int, payload: str, amount: int) -> str:
    world = emu.world
    charge_id = "stx" + secrets.token_urlsafe(30)
    world.stars[uid] = world.star_balance(uid) - amount
    message: Json = {
        "message_id": world.next_message_id(uid),
        "from": world.users[uid],
        "chat": world.chats[uid],
        "date": int(time.time()),
        "successful_payment": {
            "currency": "XTR", "total_amount": amount, "invoice_payload": payload,
            "telegram_payment_charge_id": charge_id, "provider_payment_charge_id": "",
        },
    }  # fmt: skip
    world.charges[charge_id] = ChargeRecord(
        charge_id, uid, uid, "XTR", amount, payload, 0, message, int(time.time())
    )
    world.add_message(message, outgoing=False)
    world.push_update("message", message)
    return charge_id


# --- refunds --------------------------------------------------------------------------------


async def bought(emu: TelegramEmulator, uid: int, package: str = "avatar") -> str:
    result = await pay(emu, uid, await invoice(emu, uid, package))
    assert result["status"] == "paid", result
    await bot_message(emu, uid, text="Payment received")
    return str(result["telegram_payment_charge_id"])


async def purchase_seq(pool: asyncpg.Pool, charge: str) -> int:
    entry = await credits.entry(pool, f"purchase:{charge}")
    assert entry is not None
    return entry.seq


async def test_refund_returns_stars_once(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    uid = await newcomer(emu)
    charge = await bought(emu, uid)
    seq = await purchase_seq(admin_pool, charge)
    await emu.send_command(uid, "buy")
    shop = await bot_message(emu, uid, text="can still refund", button=f"shop:refund::{seq}")
    await press(emu, uid, shop, "shop:refund:")
    confirm = await bot_message(emu, uid, text="Refund", button="shop:refund_yes:")
    assert "⭐ 250" in confirm["text"]
    assert "50 credits" in confirm["text"]
    await press(emu, uid, confirm, "shop:refund_yes:")
    await bot_message(
        emu, uid, text=f"returned to you and 50 credits taken off. Your balance: {TRIAL}"
    )

    assert emu.world.charges[charge].refunded
    assert emu.payments.balance(uid) == STARTING_STARS
    assert await balance(admin_pool, uid) == TRIAL
    [row] = await star_payments(admin_pool)
    assert row["refund_requested_at"] is not None
    assert row["refunded_at"] is not None
    debit = await credits.entry(admin_pool, f"payment_refund:{charge}")
    assert debit is not None
    assert debit.amount == -50

    # the same button again (an old message, or a forged press): refused, nothing moves
    query = forge_press(emu, uid, confirm["message_id"], f"shop:refund_yes::{seq}")
    assert "already been requested" in (await answer_of(emu, uid, query))["text"]
    assert await balance(admin_pool, uid) == TRIAL
    await emu.send_command(uid, "buy")
    await settled(emu)
    newest = (await emu.bot_messages(uid))[-1]
    assert "Balance" in newest["text"]
    assert "shop:refund" not in str(newest["reply_markup"])


async def test_no_refund_after_spending_or_past_the_window_or_for_others(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    uid = await newcomer(emu)
    thief = await newcomer(emu, "Thief")
    spent = await bought(emu, uid, "images20")
    old = await bought(emu, uid, "images100")
    await emu.send_command(thief, "start")
    menu = await bot_message(emu, thief, button="menu:")
    async with admin_pool.acquire() as conn, conn.transaction():
        await credits.post(conn, user_id=uid, kind=credits.Kind.GENERATION_CHARGE, amount=-1,
                           key="charge:generation:test")  # fmt: skip
    await admin_pool.execute(
        "UPDATE star_payments SET paid_at = now() - interval '15 days'"
        " WHERE telegram_payment_charge_id = $1",
        old,
    )
    before = await balance(admin_pool, uid)

    # a charge after `spent` makes it unrefundable; `old` is out of the 14-day window
    await emu.send_command(uid, "buy")
    await settled(emu)
    assert "shop:refund" not in str((await emu.bot_messages(uid))[-1]["reply_markup"])
    shop = (await emu.bot_messages(uid))[-1]
    seq_spent, seq_old = await purchase_seq(admin_pool, spent), await purchase_seq(admin_pool, old)
    for seq, alert in ((seq_spent, "were spent"), (seq_old, "within 14 days")):
        query = forge_press(emu, uid, shop["message_id"], f"shop:refund_yes::{seq}")
        assert alert in (await answer_of(emu, uid, query))["text"]
    # someone else's purchase id is simply not found
    query = forge_press(emu, thief, menu["message_id"], f"shop:refund_yes::{seq_old}")
    assert "not found" in (await answer_of(emu, thief, query))["text"]

    assert await balance(admin_pool, uid) == before
    assert not any(c.refunded for c in emu.world.charges.values())
    rows = await star_payments(admin_pool)
    assert [r["refund_requested_at"] for r in rows] == [None, None]


async def test_refund_refused_by_telegram_gives_credits_back(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    uid = await newcomer(emu)
    charge = await bought(emu, uid)
    seq = await purchase_seq(admin_pool, charge)
    await emu.inject_fault(
        "refundStarPayment", status=400, description="Bad Request: CHARGE_NOT_FOUND"
    )
    await emu.send_command(uid, "buy")
    shop = await bot_message(emu, uid, button="shop:refund:")
    forge_press(emu, uid, shop["message_id"], f"shop:refund_yes::{seq}")
    await bot_message(emu, uid, text="refused to refund this payment")
    assert await balance(admin_pool, uid) == TRIAL + 50
    assert not emu.world.charges[charge].refunded
    reversal = await credits.entry(admin_pool, f"payment_refund_reversal:{charge}")
    assert reversal is not None
    assert reversal.amount == 50
    query = forge_press(emu, uid, shop["message_id"], f"shop:refund_yes::{seq}")
    assert "already" in (await answer_of(emu, uid, query))["text"]
    assert await balance(admin_pool, uid) == TRIAL + 50


async def test_refund_left_pending_by_an_outage_is_resumed_at_start(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    uid = await newcomer(emu)
    charge = await bought(emu, uid)
    seq = await purchase_seq(admin_pool, charge)
    await emu.inject_fault("refundStarPayment", status=502)
    await emu.send_command(uid, "buy")
    shop = await bot_message(emu, uid, button="shop:refund:")
    forge_press(emu, uid, shop["message_id"], f"shop:refund_yes::{seq}")
    await bot_message(emu, uid, text="has not confirmed the refund yet")
    assert await balance(admin_pool, uid) == TRIAL  # on hold: not spendable meanwhile
    assert not emu.world.charges[charge].refunded
    [row] = await star_payments(admin_pool)
    assert row["refund_requested_at"] is not None
    assert row["refunded_at"] is None

    await bot.stop()
    await bot.start()  # too fresh (< 1 minute): a live handler may still be on it
    await settled(emu)
    assert not emu.world.charges[charge].refunded
    await admin_pool.execute(
        "UPDATE star_payments SET refund_requested_at = now() - interval '2 minutes'"
    )
    await bot.stop()
    await bot.start()

    async def done() -> bool:
        paid_back = await admin_pool.fetchval("SELECT refunded_at FROM star_payments")
        return paid_back is not None and emu.world.charges[charge].refunded

    await eventually(done)
    assert emu.payments.balance(uid) == STARTING_STARS
    assert await balance(admin_pool, uid) == TRIAL
