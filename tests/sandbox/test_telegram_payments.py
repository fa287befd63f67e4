"""Telegram Stars payments in the emulator, driven by the real aiogram client and Dispatcher."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LabeledPrice,
    Message,
    PreCheckoutQuery,
    TransactionPartnerUser,
)

from sandbox.telegram import Limits, TelegramEmulator
from sandbox.telegram.state import STARTING_STARS

TOKEN = "777000111:AAH-payments"


@pytest.fixture
async def emu() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator(limits=Limits(enabled=False)) as emulator:
        yield emulator


@pytest.fixture
async def bot(emu: TelegramEmulator) -> AsyncIterator[Bot]:
    client = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url)))
    yield client
    await client.session.close()


@pytest.fixture
async def uid(emu: TelegramEmulator) -> int:
    return int((await emu.create_user("Payer", language_code="en"))["id"])


async def invoice(bot: Bot, chat_id: int, amount: int = 50, payload: str = "credits:50") -> Message:
    return await bot.send_invoice(
        chat_id=chat_id,
        title="50 credits",
        description="Credits for avatar trainings and generations",
        payload=payload,
        currency="XTR",
        prices=[LabeledPrice(label="50 credits", amount=amount)],
    )


@dataclass
class Shop:
    """A bot's payment handlers; `decline` / `delay` shape the pre-checkout answer."""

    decline: str | None = None
    delay: float = 0.0
    queries: list[PreCheckoutQuery] = field(default_factory=list)
    paid: list[Message] = field(default_factory=list)
    refunded: list[Message] = field(default_factory=list)
    answer_errors: list[str] = field(default_factory=list)

    def router(self) -> Router:
        router = Router(name="shop")

        @router.pre_checkout_query()
        async def pre_checkout(query: PreCheckoutQuery) -> None:
            self.queries.append(query)
            await asyncio.sleep(self.delay)
            try:
                if self.decline is None:
                    await query.answer(ok=True)
                else:
                    await query.answer(ok=False, error_message=self.decline)
            except TelegramBadRequest as exc:
                self.answer_errors.append(exc.message)

        @router.message(F.successful_payment)
        async def paid(message: Message) -> None:
            self.paid.append(message)

        @router.message(F.refunded_payment)
        async def refunded(message: Message) -> None:
            self.refunded.append(message)

        return router


@contextlib.asynccontextmanager
async def polling(bot: Bot, shop: Shop) -> AsyncIterator[None]:
    dp = Dispatcher()
    dp.include_router(shop.router())
    task = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=1))
    try:
        yield
    finally:
        await dp.stop_polling()
        await asyncio.wait_for(task, 5)


async def control(emu: TelegramEmulator, verb: str, path: str, body: Any = None) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.request(verb, f"{emu.base_url}/_emu{path}", json=body) as resp,
    ):
        data = await resp.json()
        if resp.status != 200:
            raise AssertionError(f"{resp.status}: {data}")
        return data


# -- sendInvoice -----------------------------------------------------------------------------


async def test_send_invoice_returns_message_with_invoice(
    bot: Bot, emu: TelegramEmulator, uid: int
) -> None:
    sent = await invoice(bot, uid, amount=75, payload="order-1")
    assert sent.invoice is not None
    assert sent.invoice.currency == "XTR"
    assert sent.invoice.total_amount == 75
    assert sent.invoice.title == "50 credits"
    assert sent.invoice.start_parameter == ""
    [stored] = (await control(emu, "GET", "/payments"))["invoices"]
    assert stored["message_id"] == sent.message_id
    assert stored["payload"] == "order-1"
    assert stored["telegram_payment_charge_id"] is None
    [message] = await emu.bot_messages(uid)
    assert message["invoice"]["total_amount"] == 75


async def test_send_invoice_accepts_own_pay_button(bot: Bot, uid: int) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text="Pay ⭐ 50", pay=True)],
            [InlineKeyboardButton(text="Cancel", callback_data="cancel")],
        ]
    )
    sent = await bot.send_invoice(
        uid, "t", "d", "p", currency="XTR", prices=[LabeledPrice(label="x", amount=50)],
        reply_markup=markup,
    )  # fmt: skip
    assert sent.reply_markup is not None
    assert sent.reply_markup.inline_keyboard[0][0].pay is True


@pytest.mark.parametrize(
    ("changes", "error", "kind"),
    [
        ({"currency": "USD"}, "CURRENCY_INVALID", "currency_invalid"),
        ({"provider_token": "284685063:TEST"}, "PAYMENT_PROVIDER_INVALID", "currency_invalid"),
        ({"prices": [LabeledPrice(label="x", amount=0)]}, "CURRENCY_TOTAL_AMOUNT_INVALID",
         "invoice_amount_invalid"),
        ({"prices": [LabeledPrice(label="x", amount=-5)]}, "CURRENCY_TOTAL_AMOUNT_INVALID",
         "invoice_amount_invalid"),
        ({"prices": [LabeledPrice(label="x", amount=10_001)]}, "CURRENCY_TOTAL_AMOUNT_INVALID",
         "invoice_amount_invalid"),
        ({"prices": [LabeledPrice(label="a", amount=10), LabeledPrice(label="b", amount=5)]},
         "STARS_INVOICE_INVALID", "invoice_invalid"),
        ({"prices": []}, "there must be at least one price", "invoice_invalid"),
        ({"payload": ""}, "INVOICE_PAYLOAD_INVALID", "invoice_invalid"),
        ({"payload": "x" * 129}, "INVOICE_PAYLOAD_INVALID", "invoice_invalid"),
        ({"title": "t" * 33}, "TITLE_INVALID", "invoice_invalid"),
        ({"description": "d" * 256}, "DESCRIPTION_INVALID", "invoice_invalid"),
        ({"reply_markup": InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="no", callback_data="no")]])},
         "REPLY_MARKUP_BUY_EMPTY", "markup_invalid"),
    ],
)  # fmt: skip
async def test_send_invoice_validation(
    bot: Bot, emu: TelegramEmulator, uid: int, changes: dict[str, Any], error: str, kind: str
) -> None:
    args: dict[str, Any] = {
        "chat_id": uid,
        "title": "Credits",
        "description": "Credits",
        "payload": "credits",
        "currency": "XTR",
        "prices": [LabeledPrice(label="x", amount=10)],
        **changes,
    }
    with pytest.raises(TelegramBadRequest, match=error):
        await bot.send_invoice(**args)
    assert await emu.violations() == {kind: 1}
    assert await emu.bot_messages(uid) == []
    assert emu.world.invoices == {}


# -- paying ----------------------------------------------------------------------------------


async def test_pay_flow_through_dispatcher(bot: Bot, emu: TelegramEmulator, uid: int) -> None:
    shop = Shop()
    sent = await invoice(bot, uid, amount=50, payload="credits:50")
    async with polling(bot, shop):
        result = await control(emu, "POST", "/pay", {"chat_id": uid, "message_id": sent.message_id})
        assert result["status"] == "paid"
        await emu.wait_for(lambda: len(shop.paid) == 1)
    charge_id = result["telegram_payment_charge_id"]
    assert charge_id.startswith("stx")
    [query] = shop.queries
    assert (query.currency, query.total_amount, query.invoice_payload) == ("XTR", 50, "credits:50")
    assert query.from_user.id == uid
    [message] = shop.paid
    payment = message.successful_payment
    assert payment is not None
    assert payment.telegram_payment_charge_id == charge_id
    assert payment.provider_payment_charge_id == ""
    assert (payment.currency, payment.total_amount, payment.invoice_payload) == (
        "XTR", 50, "credits:50",
    )  # fmt: skip
    assert message.message_id == result["message_id"]
    assert message.from_user is not None
    assert message.from_user.id == uid
    summary = await control(emu, "GET", "/payments")
    [record] = summary["payments"]
    assert record["telegram_payment_charge_id"] == charge_id
    assert (record["user_id"], record["total_amount"], record["refunded"]) == (uid, 50, False)
    assert summary["balances"][str(uid)] == STARTING_STARS - 50
    assert summary["bot_balance"] == 50
    assert (await bot.get_my_star_balance()).amount == 50
    assert await emu.violations() == {}
    # paid once: the invoice shows a receipt now
    with pytest.raises(AssertionError, match="already paid"):
        await control(emu, "POST", "/pay", {"chat_id": uid, "message_id": sent.message_id})


async def test_declined_pre_checkout_takes_no_stars(
    bot: Bot, emu: TelegramEmulator, uid: int
) -> None:
    shop = Shop(decline="Sold out, sorry")
    sent = await invoice(bot, uid)
    async with polling(bot, shop):
        result = await emu.payments.pay(uid, sent.message_id)
        assert result == {"status": "declined", "error_message": "Sold out, sorry"}
        await asyncio.sleep(0.3)
        assert shop.paid == []
        assert emu.payments.summary()["payments"] == []
        assert emu.payments.balance(uid) == STARTING_STARS
        entries = emu.world.transcript(uid)["messages"]
        assert not any("successful_payment" in e["message"] for e in entries)
        shop.decline = None  # the user may try again after a refusal
        again = await emu.payments.pay(uid, sent.message_id)
        await emu.wait_for(lambda: len(shop.paid) == 1)
    assert again["status"] == "paid"
    assert len(shop.queries) == 2
    assert emu.payments.balance(uid) == STARTING_STARS - 50
    assert len(emu.world.charges) == 1


async def test_late_answer_is_query_id_invalid_and_pay_times_out(
    bot: Bot, emu: TelegramEmulator, uid: int
) -> None:
    await emu.set_limits(pre_checkout_timeout=0.3)
    shop = Shop(delay=0.8)
    sent = await invoice(bot, uid)
    async with polling(bot, shop):
        result = await emu.payments.pay(uid, sent.message_id)
        assert result["status"] == "timeout"
        await emu.wait_for(lambda: len(shop.answer_errors) == 1)
    assert shop.answer_errors == ["Bad Request: QUERY_ID_INVALID"]
    assert shop.paid == []
    assert emu.payments.balance(uid) == STARTING_STARS
    assert (await emu.violations()) == {"query_id_invalid": 1}


async def test_answer_pre_checkout_query_rules(bot: Bot, emu: TelegramEmulator, uid: int) -> None:
    sent = await invoice(bot, uid)
    with pytest.raises(TelegramBadRequest, match="QUERY_ID_INVALID"):
        await bot.answer_pre_checkout_query("12345", ok=True)
    paying = asyncio.create_task(emu.payments.pay(uid, sent.message_id))
    [update] = await bot.get_updates(timeout=5, allowed_updates=["pre_checkout_query"])
    query = update.pre_checkout_query
    assert query is not None
    with pytest.raises(TelegramBadRequest, match="error_message is empty"):
        await bot.answer_pre_checkout_query(query.id, ok=False)
    assert await bot.answer_pre_checkout_query(query.id, ok=True)
    with pytest.raises(TelegramBadRequest, match="QUERY_ID_INVALID"):
        await bot.answer_pre_checkout_query(query.id, ok=True)
    assert (await asyncio.wait_for(paying, 5))["status"] == "paid"


async def test_forged_payload_and_amount_reach_the_bot(
    bot: Bot, emu: TelegramEmulator, uid: int
) -> None:
    shop = Shop()
    sent = await invoice(bot, uid, amount=50, payload="credits:50")
    async with polling(bot, shop):
        body = {
            "chat_id": uid, "message_id": sent.message_id, "payload": "credits:5000",
            "total_amount": 1,
        }  # fmt: skip
        result = await control(emu, "POST", "/pay", body)
        await emu.wait_for(lambda: len(shop.paid) == 1)
    assert result["status"] == "paid"
    assert (shop.queries[0].invoice_payload, shop.queries[0].total_amount) == ("credits:5000", 1)
    payment = shop.paid[0].successful_payment
    assert payment is not None
    assert (payment.invoice_payload, payment.total_amount) == ("credits:5000", 1)
    assert emu.payments.balance(uid) == STARTING_STARS - 1


async def test_insufficient_balance_sends_no_query(
    bot: Bot, emu: TelegramEmulator, uid: int
) -> None:
    sent = await invoice(bot, uid, amount=50)
    assert (await control(emu, "POST", f"/users/{uid}/stars", {"balance": 49}))["balance"] == 49
    result = await control(emu, "POST", "/pay", {"chat_id": uid, "message_id": sent.message_id})
    assert result == {"status": "insufficient_balance", "balance": 49}
    assert await emu.pending_updates() == []
    assert (await control(emu, "GET", f"/users/{uid}/stars"))["balance"] == 49


async def test_replay_delivers_the_same_payment_twice(
    bot: Bot, emu: TelegramEmulator, uid: int
) -> None:
    shop = Shop()
    sent = await invoice(bot, uid)
    async with polling(bot, shop):
        result = await emu.payments.pay(uid, sent.message_id)
        await emu.wait_for(lambda: len(shop.paid) == 1)
        replayed = await control(
            emu,
            "POST",
            "/payments/replay",
            {"telegram_payment_charge_id": result["telegram_payment_charge_id"]},
        )
        await emu.wait_for(lambda: len(shop.paid) == 2)
    first, second = shop.paid
    assert first.successful_payment is not None
    assert second.successful_payment is not None
    charge_id = result["telegram_payment_charge_id"]
    assert first.successful_payment.telegram_payment_charge_id == charge_id
    assert second.successful_payment.telegram_payment_charge_id == charge_id
    assert first.message_id == second.message_id
    assert replayed["status"] == "replayed"
    assert isinstance(replayed["update_id"], int)
    assert emu.payments.balance(uid) == STARTING_STARS - 50  # charged once
    entries = emu.world.transcript(uid)["messages"]
    assert sum("successful_payment" in e["message"] for e in entries) == 1


# -- refunds ---------------------------------------------------------------------------------


async def test_refund_restores_stars_and_notifies_bot(
    bot: Bot, emu: TelegramEmulator, uid: int
) -> None:
    shop = Shop()
    sent = await invoice(bot, uid, amount=70, payload="credits:70")
    async with polling(bot, shop):
        result = await emu.payments.pay(uid, sent.message_id)
        charge_id = result["telegram_payment_charge_id"]
        assert emu.payments.balance(uid) == STARTING_STARS - 70
        assert await bot.refund_star_payment(uid, charge_id) is True
        await emu.wait_for(lambda: len(shop.refunded) == 1)
        with pytest.raises(TelegramBadRequest, match="CHARGE_ALREADY_REFUNDED"):
            await bot.refund_star_payment(uid, charge_id)
    refund = shop.refunded[0].refunded_payment
    assert refund is not None
    assert (refund.currency, refund.total_amount, refund.invoice_payload) == (
        "XTR", 70, "credits:70",
    )  # fmt: skip
    assert refund.telegram_payment_charge_id == charge_id
    assert emu.payments.balance(uid) == STARTING_STARS
    [record] = emu.payments.summary()["payments"]
    assert record["refunded"] is True
    assert (await bot.get_my_star_balance()).amount == 0
    history = (await bot.get_star_transactions()).transactions
    assert [t.id for t in history] == [charge_id, charge_id]
    assert isinstance(history[0].source, TransactionPartnerUser)
    assert isinstance(history[1].receiver, TransactionPartnerUser)
    assert history[1].receiver.invoice_payload == "credits:70"
    assert await emu.violations() == {"charge_already_refunded": 1}


async def test_refund_of_unknown_or_foreign_charge_is_not_found(
    bot: Bot, emu: TelegramEmulator, uid: int
) -> None:
    other = int((await emu.create_user("Other"))["id"])
    shop = Shop()
    sent = await invoice(bot, uid)
    async with polling(bot, shop):
        result = await emu.payments.pay(uid, sent.message_id)
    charge_id = result["telegram_payment_charge_id"]
    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await bot.refund_star_payment(other, charge_id)
    with pytest.raises(TelegramBadRequest, match="CHARGE_NOT_FOUND"):
        await bot.refund_star_payment(uid, "stxNoSuchCharge")
    assert emu.payments.balance(uid) == STARTING_STARS - 50
    assert emu.payments.balance(other) == STARTING_STARS
    assert emu.payments.summary()["payments"][0]["refunded"] is False
    assert await emu.violations() == {"charge_not_found": 2}
