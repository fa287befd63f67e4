"""Promo codes and the admin's credit tools through the real bot (aiogram polling the
emulator, real NATS and PostgreSQL): /promo_new, /promo under concurrency, /grant (once per
message, even when Telegram delivers it twice), /ledger, bad input, and non-admins."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from sandbox.telegram import TelegramEmulator
from services.bot.app.pricing import Pricing
from services.kit import credits
from tests.botkit import ADMIN_ID, BotUnderTest, bot_message, eventually

Json = dict[str, Any]
PRICING = Pricing()
TRIAL = PRICING.trial


@pytest.fixture
def bot_overrides() -> dict[str, Any]:
    return {"pricing": PRICING}


async def newcomer(emu: TelegramEmulator, name: str, start: bool = True) -> int:
    uid = int((await emu.create_user(name, language_code="en"))["id"])
    if start:
        await emu.send_command(uid, "start")
        await bot_message(emu, uid, button="menu:")
    return uid


async def admin(emu: TelegramEmulator) -> int:
    await emu.create_user("Admin", language_code="en", user_id=ADMIN_ID)
    return ADMIN_ID


async def reply(emu: TelegramEmulator, uid: int, command: str, args: str = "") -> str:
    """Send a command and return the text of the bot's answer to it."""
    before = len(await emu.bot_messages(uid))
    await emu.send_command(uid, command, args)

    async def answered() -> str | None:
        messages = await emu.bot_messages(uid)
        return str(messages[-1].get("text") or "") if len(messages) > before else None

    text: str = await eventually(answered)
    return text


async def balance(pool: asyncpg.Pool, uid: int) -> int:
    return await credits.balance(pool, uid)


# --- promo codes ----------------------------------------------------------------------------


async def test_thirty_users_race_for_ten_uses(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    boss = await admin(emu)
    created = await reply(emu, boss, "promo_new", "launch 5 30 10")
    assert "Promo code LAUNCH: 5 credits, 10 uses" in created
    users = [int((await emu.create_user(f"U{i}", language_code="en"))["id"]) for i in range(30)]
    for uid in users:  # all queued before the bot fetches any: handled concurrently
        await emu.send_command(uid, "promo", "launch")

    async def last_answer(uid: int) -> str:
        message = await bot_message(emu, uid, text="romo code", within=30)
        return str(message["text"])

    answers = await asyncio.gather(*(last_answer(uid) for uid in users))
    assert sum("Promo code applied: +5 credits" in a for a in answers) == 10
    assert sum("has been used up" in a for a in answers) == 20
    assert await admin_pool.fetchval("SELECT uses FROM promo_codes WHERE code = 'LAUNCH'") == 10
    assert await admin_pool.fetchval("SELECT count(*) FROM promo_redemptions") == 10
    assert (
        await admin_pool.fetchval("SELECT count(*) FROM credit_entries WHERE kind = 'promo'") == 10
    )
    winners = [uid for uid, a in zip(users, answers, strict=True) if "applied" in a]
    assert [await balance(admin_pool, uid) for uid in winners] == [TRIAL + 5] * 10


async def test_one_redemption_per_user_and_codes_that_do_not_work(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    boss = await admin(emu)
    assert "Promo code GIFT" in await reply(emu, boss, "promo_new", "GIFT 7 10 100")
    assert "Promo code OLD" in await reply(emu, boss, "promo_new", "OLD 7 1 100")
    await admin_pool.execute("UPDATE promo_codes SET expires_at = now() WHERE code = 'OLD'")
    uid = await newcomer(emu, "Greedy")

    # the same user twice at once: one credit, one "already"
    await emu.send_command(uid, "promo", "gift")
    await emu.send_command(uid, "promo", "GIFT")

    async def both() -> list[str] | None:
        texts = [m.get("text") or "" for m in await emu.bot_messages(uid)]
        found = [t for t in texts if "applied" in t or "already used" in t]
        return found if len(found) == 2 else None

    answers = await eventually(both)
    assert sorted("applied" in a for a in answers) == [False, True]
    assert await balance(admin_pool, uid) == TRIAL + 7
    assert "already used" in await reply(emu, uid, "promo", "gift")
    assert "has expired" in await reply(emu, uid, "promo", "old")
    assert "no such promo code" in await reply(emu, uid, "promo", "NOPE")
    assert "no such promo code" in await reply(emu, uid, "promo", "'; drop table users; --")
    assert "/promo CODE" in await reply(emu, uid, "promo")
    assert await balance(admin_pool, uid) == TRIAL + 7
    uses = await admin_pool.fetch("SELECT code, uses FROM promo_codes ORDER BY code")
    assert [(r["code"], r["uses"]) for r in uses] == [("GIFT", 1), ("OLD", 0)]


async def test_promo_new_refuses_bad_input_and_duplicates(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    boss = await admin(emu)
    cases = [
        ("", "Usage: /promo_new CODE CREDITS DAYS USES"),
        ("SALE 5 30", "Usage"),
        ("ab 5 30 10", "3–32 characters"),
        ("SALE 0 30 10", "CREDITS must be"),
        ("SALE -5 30 10", "CREDITS must be"),
        ("SALE 100001 30 10", "CREDITS must be"),
        ("SALE five 30 10", "CREDITS must be"),
        ("SALE 5 366 10", "DAYS must be"),
        ("SALE 5 30 0", "USES must be"),
        ("SALE 5 30 99999999999999999999", "USES must be"),
    ]
    for args, expected in cases:
        assert expected in await reply(emu, boss, "promo_new", args), args
    assert await admin_pool.fetchval("SELECT count(*) FROM promo_codes") == 0
    assert "Promo code SALE" in await reply(emu, boss, "promo_new", "sale 5 30 10")
    assert "already exists" in await reply(emu, boss, "promo_new", "SALE 500 30 10")
    row = await admin_pool.fetchrow("SELECT credits, max_uses, created_by FROM promo_codes")
    assert tuple(row) == (5, 10, ADMIN_ID)


# --- admin grants and the ledger ------------------------------------------------------------


async def test_grant_once_per_message_and_ledger(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    boss = await admin(emu)
    uid = await newcomer(emu, "Lucky")
    command = await emu.send_command(boss, "grant", f"{uid} 25 sorry for the outage")
    await bot_message(emu, boss, text=f"25 credits granted to {uid}. Their balance: {TRIAL + 25}")
    entries = await credits.history(admin_pool, uid)
    assert entries[0].kind is credits.Kind.ADMIN_GRANT
    assert (entries[0].amount, entries[0].actor_id) == (25, ADMIN_ID)
    assert entries[0].reason == "sorry for the outage"

    emu.world.push_update("message", command)  # Telegram delivers the same message again
    await bot_message(emu, boss, text="already made")
    assert await balance(admin_pool, uid) == TRIAL + 25

    ledger = await reply(emu, boss, "ledger", str(uid))
    assert f"Ledger of {uid} — balance {TRIAL + 25} credits" in ledger
    assert "from the team +25" in ledger
    assert "sorry for the outage" in ledger
    assert "welcome gift +10" in ledger
    assert ledger.index("from the team") < ledger.index("welcome gift")  # newest first


async def test_grant_and_ledger_refuse_bad_input(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    boss = await admin(emu)
    uid = await newcomer(emu, "Target")
    cases = [
        ("", "Usage: /grant"),
        (f"{uid}", "Usage: /grant"),
        ("abc 5", "USER_ID must be"),
        (f"-{uid} 5", "USER_ID must be"),
        (f"{uid} -5", "AMOUNT must be"),
        (f"{uid} 0", "AMOUNT must be"),
        (f"{uid} 100001", "AMOUNT must be"),
        (f"{uid} 99999999999999999999", "AMOUNT must be"),
        (f"{uid} 1.5", "AMOUNT must be"),
        ("123456789 5", "has never used the bot"),
    ]
    for args, expected in cases:
        assert expected in await reply(emu, boss, "grant", args), args
    assert await balance(admin_pool, uid) == TRIAL
    assert await admin_pool.fetchval(
        "SELECT count(*) FROM credit_entries WHERE kind = 'admin_grant'"
    ) == 0  # fmt: skip
    assert "Usage: /ledger" in await reply(emu, boss, "ledger", "me")
    assert "is unknown" in await reply(emu, boss, "ledger", "123456789")


async def test_non_admins_cannot_use_admin_commands(
    emu: TelegramEmulator, bot: BotUnderTest, admin_pool: asyncpg.Pool
) -> None:
    uid = await newcomer(emu, "Sneaky")
    for command, args in (
        ("grant", f"{uid} 100000"),
        ("promo_new", "FREE 100000 365 1000000"),
        ("ledger", str(uid)),
    ):
        assert "didn't understand that command" in await reply(emu, uid, command, args)
    assert await balance(admin_pool, uid) == TRIAL
    assert await admin_pool.fetchval("SELECT count(*) FROM promo_codes") == 0
