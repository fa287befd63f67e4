"""A Stars payment whose `successful_payment` was never handled is still credited, once.

The real bot polls the emulator (real NATS and PostgreSQL) and the user pays the ordinary
way, but crediting fails: a trigger makes every `star_payments` insert raise, as a database
outage would. The handler's error is logged and the user told "something went wrong"; the
update is confirmed all the same, and Telegram never sends it again. With the database back,
reconciliation (`services/bot/credits/reconcile.py`) finds the charge in getStarTransactions and
credits it through the handler's own path: at start, and every
`STARS_RECONCILE_INTERVAL_SECONDS` while running.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from sandbox.telegram import TelegramEmulator
from sandbox.telegram.state import STARTING_STARS, ChargeRecord
from services.bot.app.metrics import BotMetrics
from services.bot.credits.invoices import InvoiceSigner, Offer
from services.bot.credits.reconcile import GRACE, PaymentReconciler
from services.bot.credits.service import Billing
from tests.botkit import BotUnderTest, bot_config, bot_message, eventually, running_bot
from tests.integration.test_bot_payments import (
    PRICING,
    TOKEN,
    TRIAL,
    balance,
    invoice,
    newcomer,
    pay,
    settled,
    star_payments,
    texts_with,
)

Json = dict[str, Any]
CREDITED = "Payment received: +50 credits"
OUTAGE = """
CREATE FUNCTION test_outage() RETURNS trigger LANGUAGE plpgsql
AS $$ BEGIN RAISE EXCEPTION 'database unavailable (test)'; END $$;
CREATE TRIGGER test_outage BEFORE INSERT ON star_payments
FOR EACH ROW EXECUTE FUNCTION test_outage();
"""
OUTAGE_OVER = "DROP TRIGGER test_outage ON star_payments; DROP FUNCTION test_outage();"


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    return {"pricing": PRICING, "stars_reconcile_interval_seconds": 0}  # at start only


@contextlib.asynccontextmanager
async def payments_fail(pool: asyncpg.Pool) -> AsyncIterator[None]:
    """Until the block ends, recording any Stars payment fails in the database."""
    await pool.execute(OUTAGE)
    try:
        yield
    finally:
        await pool.execute(OUTAGE_OVER)


async def lost_payment(emu: TelegramEmulator, admin_pool: asyncpg.Pool, uid: int) -> str:
    """Pay a 250⭐ invoice while the database refuses it; the update is gone afterwards."""
    message = await invoice(emu, uid)
    async with payments_fail(admin_pool):
        result = await pay(emu, uid, message)
        assert result["status"] == "paid", result
        await bot_message(emu, uid, text="Something went wrong")
        await settled(emu)  # confirmed: Telegram will not deliver it again
    assert await balance(admin_pool, uid) == TRIAL
    assert await star_payments(admin_pool) == []
    return str(result["telegram_payment_charge_id"])


def age(emu: TelegramEmulator, charge: str) -> None:
    """Let the payment be older than `GRACE` (a live handler no longer has it)."""
    emu.world.charges[charge].paid_at -= int(GRACE.total_seconds()) + 60


def ledger_reads(emu: TelegramEmulator) -> int:
    return int(emu.world.stats["call:getStarTransactions"])


async def next_round(emu: TelegramEmulator, rounds: int = 1) -> None:
    """Wait until the bot has read Telegram's Stars ledger `rounds` more times."""
    seen = ledger_reads(emu)
    await eventually(lambda: _past(emu, seen + rounds))
    await settled(emu)


async def _past(emu: TelegramEmulator, reads: int) -> bool:
    return ledger_reads(emu) >= reads


async def credited(pool: asyncpg.Pool, uid: int, amount: int) -> bool:
    return await balance(pool, uid) == amount


async def test_a_payment_lost_to_an_outage_is_credited_once_at_start(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    uid = await newcomer(emu)
    charge = await lost_payment(emu, admin_pool, uid)

    await bot.stop()
    await bot.start()
    await next_round(emu)  # too fresh: the live handler may still be crediting it
    assert await balance(admin_pool, uid) == TRIAL

    age(emu, charge)
    await bot.stop()
    await bot.start()
    await eventually(lambda: credited(admin_pool, uid, TRIAL + 50))
    await bot_message(emu, uid, text=f"{CREDITED}. Your balance: {TRIAL + 50}")
    [row] = await star_payments(admin_pool)
    assert (row["telegram_payment_charge_id"], row["user_id"]) == (charge, uid)
    assert (row["package_id"], row["stars"], row["credits"]) == ("avatar", 250, 50)

    # a second reconciliation finds nothing to do
    metrics = BotMetrics()
    client = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url)))
    try:
        billing = Billing(admin_pool, PRICING, InvoiceSigner(TOKEN), client, metrics)
        assert await PaymentReconciler(billing, client).reconcile() == 0
    finally:
        await client.session.close()
    for outcome in ("reconciled", "credited", "duplicate"):
        labels = {"outcome": outcome}
        assert metrics.registry.get_sample_value("aisha_bot_payments_total", labels) == 0
    assert await balance(admin_pool, uid) == TRIAL + 50
    assert len(await star_payments(admin_pool)) == 1
    assert len(texts_with(await emu.bot_messages(uid), CREDITED)) == 1


async def test_running_bot_reconciles_periodically_and_refunds_what_it_cannot_credit(
    emu: TelegramEmulator, nats_url: str, db_url: str, admin_pool: asyncpg.Pool
) -> None:
    config = bot_config(
        emu, nats_url, db_url, pricing=PRICING, stars_reconcile_interval_seconds=0.2
    )
    async with running_bot(config):
        uid = await newcomer(emu)
        charge = await lost_payment(emu, admin_pool, uid)
        # a paid payload that is not ours, whose update was lost as well
        forged = InvoiceSigner("999:another-bot-token").sign(Offer("avatar", uid, 250, 50, 1))
        bogus = paid_without_update(emu, uid, forged, 250)
        await next_round(emu, 2)
        assert await balance(admin_pool, uid) == TRIAL  # both younger than GRACE

        age(emu, charge)
        age(emu, bogus)
        await eventually(lambda: credited(admin_pool, uid, TRIAL + 50))
        await bot_message(emu, uid, text=CREDITED)
        await bot_message(emu, uid, text="did not match any offer")
        assert emu.world.charges[bogus].refunded
        assert not emu.world.charges[charge].refunded

        await next_round(emu, 3)  # later rounds: nothing credited, refunded or said again
        assert await balance(admin_pool, uid) == TRIAL + 50
        assert [r["telegram_payment_charge_id"] for r in await star_payments(admin_pool)] == [
            charge
        ]
        messages = await emu.bot_messages(uid)
        assert len(texts_with(messages, CREDITED)) == 1
        assert len(texts_with(messages, "did not match any offer")) == 1
        assert emu.payments.balance(uid) == STARTING_STARS - 250
        assert emu.world.stats["error:400"] == 0  # no refund tried twice


def paid_without_update(emu: TelegramEmulator, uid: int, payload: str, amount: int) -> str:
    """A charge in Telegram's ledger whose `successful_payment` the bot never got."""
    world = emu.world
    charge_id = "stx" + secrets.token_urlsafe(30)
    world.stars[uid] = world.star_balance(uid) - amount
    now = int(time.time())
    message: Json = {
        "message_id": world.next_message_id(uid), "from": world.users[uid],
        "chat": world.chats[uid], "date": now,
        "successful_payment": {
            "currency": "XTR", "total_amount": amount, "invoice_payload": payload,
            "telegram_payment_charge_id": charge_id, "provider_payment_charge_id": "",
        },
    }  # fmt: skip
    world.charges[charge_id] = ChargeRecord(
        charge_id, uid, uid, "XTR", amount, payload, 0, message, now
    )
    return charge_id
