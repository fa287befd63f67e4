"""Money end to end, on the whole product (`sandbox.stack.Stack`: embedded NATS and
Postgres, both emulators, the three services as processes).

A user gets the trial, buys a package with Telegram Stars through the emulator (a repeated
`successful_payment` credits once), trains an avatar that FAL fails (charged once,
refunded, told so), retries it successfully (charged again, once), and generates two
pictures (charged per picture). Then 50 generation requests for one balance of 10 reach
the trainer at once: exactly 10 are charged and submitted to FAL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import nats
import pytest
import pytest_asyncio

from contracts import GenerationRequested, derived_event_id, encode, utcnow
from sandbox.stack import Stack
from sandbox.telegram import TelegramEmulator
from tests.botkit import bot_message, eventually, open_generation_settings, press
from tests.conftest import create_database
from tests.e2e.services import whole_product
from tests.e2e.test_product import photo, rule_violations

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
TRIAL, TRAINING, AVATAR_PACK = 10, 50, 50


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def product(pg_admin_url, migrated_template, tmp_path_factory) -> AsyncIterator[Stack]:
    db_url = await create_database(pg_admin_url, template=migrated_template)
    prices = {
        "CREDITS_TRIAL": str(TRIAL),
        "CREDITS_TRAINING": str(TRAINING),
        "CREDITS_PER_IMAGE": "1",
        "CREDIT_PACKAGES": f"avatar:125:{AVATAR_PACK},images20:50:20",  # 2.5 Stars a credit
    }
    async with whole_product(db_url, tmp_path_factory.mktemp("stack"), **prices) as stack:
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def db(product: Stack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(product.db_url)  # type: ignore[attr-defined]
    yield conn
    await conn.close()


async def balance(db: asyncpg.Connection, uid: int) -> int:
    value = await db.fetchval(
        "SELECT balance_after FROM credit_entries WHERE user_id = $1 ORDER BY seq DESC LIMIT 1",
        uid,
    )
    return int(value or 0)


async def settles_at(db: asyncpg.Connection, uid: int, expected: int, within: float = 30) -> None:
    async def reached() -> bool:
        return await balance(db, uid) == expected

    await eventually(reached, within)


async def kinds(db: asyncpg.Connection, uid: int) -> list[tuple[str, int]]:
    rows = await db.fetch(
        "SELECT kind::text, amount FROM credit_entries WHERE user_id = $1 ORDER BY seq", uid
    )
    return [(r["kind"], r["amount"]) for r in rows]


async def invoice_message(emu: TelegramEmulator, uid: int) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        return next((m for m in await emu.bot_messages(uid) if "invoice" in m), None)

    message: dict[str, Any] = await eventually(find)
    return message


def button(message: dict[str, Any], fragment: str) -> str:
    rows = message["reply_markup"]["inline_keyboard"]
    return next(b["callback_data"] for row in rows for b in row if fragment in b["text"])


async def test_buy_train_fail_refund_retry_and_generate(product: Stack, db: asyncpg.Connection):
    emu, fal = product.telegram, product.fal
    assert emu is not None
    assert fal is not None
    uid = (await emu.create_user("Payer", language_code="en"))["id"]
    await emu.send_command(uid, "start")
    await settles_at(db, uid, TRIAL)

    # Buy the avatar pack with Stars; Telegram repeating the update credits nothing more.
    await emu.send_command(uid, "buy")
    shop = await bot_message(emu, uid, button="shop:buy:avatar")
    await press(emu, uid, shop, "shop:buy:avatar")
    invoice = await invoice_message(emu, uid)
    paid = await emu.payments.pay(chat_id=uid, message_id=invoice["message_id"])
    assert paid["status"] == "paid", paid
    await settles_at(db, uid, TRIAL + AVATAR_PACK)
    emu.payments.replay(paid["telegram_payment_charge_id"])
    await asyncio.sleep(1.5)  # give a wrongly double-crediting bot the time to do it
    assert await balance(db, uid) == TRIAL + AVATAR_PACK
    assert await db.fetchval("SELECT count(*) FROM star_payments WHERE user_id = $1", uid) == 1

    # An avatar whose first training FAL fails: charged once, refunded, and the user told.
    menu = await bot_message(emu, uid, button="menu:create")
    await press(emu, uid, menu, "menu:create")
    await bot_message(emu, uid, text="How shall we call")
    await emu.send_text(uid, "Paid Avatar")
    types = await bot_message(emu, uid, text="Choose the training type")
    await press(emu, uid, types, button(types, "Style"))
    await emu.send_album(uid, [photo(300 + i) for i in range(10)])
    ready = await bot_message(emu, uid, text="You can start training now", within=30)
    trigger = await db.fetchval("SELECT trigger_word FROM avatars WHERE user_id = $1", uid)
    fal.add_fault("job_failed", contains=trigger, times=1)
    await press(emu, uid, ready, button(ready, "Start"))
    card = await bot_message(emu, uid, text="Choose the quality", button="training:go")
    await press(emu, uid, card, button(card, "Quality"))
    failed = await bot_message(emu, uid, text="credits are back", within=60)
    await settles_at(db, uid, TRIAL + AVATAR_PACK)
    assert await kinds(db, uid) == [
        ("trial", TRIAL),
        ("purchase", AVATAR_PACK),
        ("training_charge", -TRAINING),
        ("refund", TRAINING),
    ]

    # The retry is a new attempt: charged once more, and this time it trains.
    await press(emu, uid, failed, "training:retry")
    await bot_message(emu, uid, text="is ready", within=60)
    await settles_at(db, uid, TRIAL + AVATAR_PACK - TRAINING)

    # Two pictures cost two credits.
    settings = await open_generation_settings(emu, uid)
    await press(emu, uid, settings, "gen:go")
    await bot_message(emu, uid, text="Ready: 2 pictures", within=60)
    await settles_at(db, uid, TRIAL + AVATAR_PACK - TRAINING - 2)
    assert (await kinds(db, uid))[-1] == ("generation_charge", -2)
    assert await rule_violations(emu) == {}


async def test_fifty_concurrent_generations_on_ten_credits_accept_exactly_ten(
    product: Stack, db: asyncpg.Connection
):
    emu, fal = product.telegram, product.fal
    assert emu is not None
    assert fal is not None
    uid = (await emu.create_user("Racer", language_code="en"))["id"]
    await emu.send_command(uid, "start")
    await settles_at(db, uid, TRIAL)
    before = {job.request_id for job in fal.jobs}
    requests = []
    for _ in range(50):  # the rows the bot writes for a confirmed generation
        generation_id = await db.fetchval(
            "INSERT INTO generations (user_id, prompt, aspect_ratio, num_images, seed)"
            " VALUES ($1, 'a lighthouse at dawn', '1:1', 1, 7) RETURNING id::text",
            uid,
        )
        requests.append(
            GenerationRequested(
                event_id=derived_event_id("generation_requested", generation_id),
                occurred_at=utcnow(),
                generation_id=generation_id,
                user_id=uid,
                avatar_id=None,
                prompt="a lighthouse at dawn",
                aspect_ratio="1:1",
                num_images=1,
                seed=7,
                credits=1,
            )
        )
    nc = await nats.connect(product.urls["NATS"])
    try:
        js = nc.jetstream()
        await asyncio.gather(
            *(
                js.publish(r.subject, encode(r), headers={"Nats-Msg-Id": r.event_id})
                for r in requests
            )
        )
    finally:
        await nc.drain()

    async def all_decided() -> list[asyncpg.Record] | None:
        rows = await db.fetch(
            "SELECT state, count(*) AS n FROM fal_submissions s JOIN generations g"
            " ON g.id = s.subject_id WHERE g.user_id = $1 GROUP BY state",
            uid,
        )
        return rows if sum(r["n"] for r in rows) == 50 else None

    states = {r["state"]: r["n"] for r in await eventually(all_decided, 60)}
    assert states.get("failed") == 40
    assert await balance(db, uid) == 0
    assert (
        await db.fetchval(
            "SELECT count(*) FROM credit_entries WHERE user_id = $1 AND kind = 'generation_charge'",
            uid,
        )
        == 10
    )
    new_jobs = [j for j in fal.jobs if j.request_id not in before]
    assert len(new_jobs) == 10
