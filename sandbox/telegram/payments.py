"""Telegram Stars (currency XTR) payments for digital goods.

The bot sends an invoice (`sendInvoice`); the emulated user pays it (control API `POST
/_emu/pay`): the bot gets a `pre_checkout_query` and must answer it (`answerPreCheckoutQuery`)
within `Limits.pre_checkout_timeout` seconds; on `ok` the user's emulated star balance goes
down and the bot gets the user's message with `successful_payment`. `refundStarPayment` gives
the stars back and sends the bot a message with `refunded_payment`, as Telegram does since
Bot API 7.10.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from typing import Any

from sandbox.telegram.actions import ActionError
from sandbox.telegram.api import Call, method
from sandbox.telegram.rules import ApiError, bad_request
from sandbox.telegram.state import (
    ChargeRecord,
    InvoiceRecord,
    Json,
    PreCheckoutRecord,
    World,
)

__all__ = ["MAX_STARS", "PaymentActions"]

CURRENCY = "XTR"
MAX_STARS = 10_000
MAX_TITLE = 32
MAX_DESCRIPTION = 255
MAX_PAYLOAD = 128
MAX_ERROR_MESSAGE = 255
QUERY_ID_INVALID = "QUERY_ID_INVALID"


def _invalid(text: str, kind: str = "invoice_invalid") -> ApiError:
    return bad_request(text, kind)


def _price(prices: Any) -> int:
    """The amount of the one LabeledPrice a Stars invoice must have."""
    if not isinstance(prices, list):
        raise _invalid('field "prices" must be an Array')
    if not prices:
        raise _invalid("there must be at least one price")
    for price in prices:
        if not isinstance(price, dict) or not isinstance(price.get("label"), str):
            raise _invalid("can't parse labeled price: Can't find field \"label\"")
        amount = price.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise _invalid('can\'t parse labeled price: Field "amount" must be of type Number')
    if len(prices) != 1:
        raise _invalid("STARS_INVOICE_INVALID")
    amount = int(prices[0]["amount"])
    if not 1 <= amount <= MAX_STARS:
        raise _invalid("CURRENCY_TOTAL_AMOUNT_INVALID", "invoice_amount_invalid")
    return amount


def _check_pay_markup(markup: Json | None) -> None:
    """An invoice's own keyboard must start with a pay button (and have only one)."""
    if markup is None:
        return
    buttons = [b for row in markup.get("inline_keyboard", []) for b in row]
    if not buttons or not buttons[0].get("pay"):
        raise _invalid("REPLY_MARKUP_BUY_EMPTY", "markup_invalid")
    if any(b.get("pay") for b in buttons[1:]):
        raise _invalid("REPLY_MARKUP_BUY_EMPTY: only the first button may be a pay button")


@method("sendInvoice")
async def send_invoice(call: Call) -> Json:
    params = call.params
    chat = call.target_chat()
    title = params.get_str("title") or ""
    description = params.get_str("description") or ""
    payload = params.get_str("payload") or ""
    if not 1 <= len(title) <= MAX_TITLE:
        raise _invalid("TITLE_INVALID" if title else "title is empty")
    if not 1 <= len(description) <= MAX_DESCRIPTION:
        raise _invalid("DESCRIPTION_INVALID" if description else "description is empty")
    if not 1 <= len(payload.encode()) <= MAX_PAYLOAD:
        raise _invalid("INVOICE_PAYLOAD_INVALID")
    currency = params.get_str("currency") or ""
    if currency != CURRENCY:
        raise _invalid("CURRENCY_INVALID", "currency_invalid")
    if params.get_str("provider_token"):
        raise _invalid("PAYMENT_PROVIDER_INVALID", "currency_invalid")
    amount = _price(params.get_json("prices"))
    if params.get_int("max_tip_amount", 0) or params.get_json("suggested_tip_amounts"):
        raise _invalid("tips are not supported in Telegram Stars invoices")
    markup = call.inline_markup()
    _check_pay_markup(markup)
    message = call.new_message(chat)
    message["invoice"] = {
        "title": title,
        "description": description,
        "start_parameter": params.get_str("start_parameter") or "",
        "currency": currency,
        "total_amount": amount,
    }
    if markup:
        message["reply_markup"] = markup
    call.store(message)
    key = (chat["id"], message["message_id"])
    call.world.invoices[key] = InvoiceRecord(
        chat["id"], message["message_id"], title, description, payload, currency, amount
    )
    return message


@method("answerPreCheckoutQuery")
async def answer_pre_checkout_query(call: Call) -> bool:
    world, params = call.world, call.params
    record = world.pre_checkouts.get(str(params.required("pre_checkout_query_id")))
    if "ok" not in params:
        raise bad_request("ok is empty", "missing_parameter")
    too_old = record is not None and (
        record.expired or time.monotonic() - record.asked_at > world.limits.pre_checkout_timeout
    )
    if record is None or record.answer is not None or too_old:
        raise bad_request(QUERY_ID_INVALID, "query_id_invalid")
    ok = params.get_bool("ok")
    error_message = params.get_str("error_message")
    if not ok and not error_message:
        raise bad_request("error_message is empty", "missing_parameter")
    if error_message and len(error_message) > MAX_ERROR_MESSAGE:
        raise bad_request("ERROR_MESSAGE_TOO_LONG", "pre_checkout_answer_invalid")
    record.answer = {"ok": ok, "error_message": None if ok else error_message}
    world.bump()
    return True


@method("refundStarPayment")
async def refund_star_payment(call: Call) -> bool:
    world, params = call.world, call.params
    user_id = params.get_int("user_id")
    if user_id is None:
        raise bad_request("user_id is empty", "missing_parameter")
    charge = world.charges.get(str(params.required("telegram_payment_charge_id")))
    if charge is None or charge.user_id != user_id:
        raise bad_request("CHARGE_NOT_FOUND", "charge_not_found")
    if charge.refunded:
        raise bad_request("CHARGE_ALREADY_REFUNDED", "charge_already_refunded")
    charge.refunded_at = int(time.time())
    world.stars[user_id] = world.star_balance(user_id) + charge.amount
    user = world.users[user_id]
    message: Json = {
        "message_id": world.next_message_id(charge.chat_id),
        "from": user,
        "chat": world.chats[charge.chat_id],
        "date": charge.refunded_at,
        "refunded_payment": {
            "currency": charge.currency,
            "total_amount": charge.amount,
            "invoice_payload": charge.payload,
            "telegram_payment_charge_id": charge.charge_id,
        },
    }
    world.add_message(message, outgoing=False)
    world.push_update("message", message)
    world.publish(charge.chat_id, {"type": "stars", "balance": world.star_balance(user_id)})
    return True


def _partner(charge: ChargeRecord, world: World) -> Json:
    return {
        "type": "user",
        "transaction_type": "invoice_payment",
        "user": world.users[charge.user_id],
        "invoice_payload": charge.payload,
    }


@method("getStarTransactions")
async def get_star_transactions(call: Call) -> Json:
    """The bot's transactions in chronological order: payments (source) and refunds
    (receiver, same id as the payment)."""
    world = call.world
    items: list[tuple[int, int, Json]] = []
    for order, charge in enumerate(world.charges.values()):
        partner = _partner(charge, world)
        base = {"id": charge.charge_id, "amount": charge.amount}
        paid = {**base, "date": charge.paid_at, "source": partner}
        items.append((charge.paid_at, 2 * order, paid))
        if charge.refunded_at is not None:
            refund = {**base, "date": charge.refunded_at, "receiver": partner}
            items.append((charge.refunded_at, 2 * order + 1, refund))
    items.sort(key=lambda item: (item[0], item[1]))
    offset = max(0, call.params.get_int("offset", 0) or 0)
    limit = min(max(call.params.get_int("limit", 100) or 100, 1), 100)
    return {"transactions": [item[2] for item in items][offset : offset + limit]}


@method("getMyStarBalance")
async def get_my_star_balance(call: Call) -> Json:
    return {"amount": call.world.bot_star_balance()}


class PaymentActions:
    """The user's side of Stars payments (also behind the control API)."""

    def __init__(self, world: World) -> None:
        self.world = world

    def _user(self, user_id: Any) -> Json:
        try:
            user = self.world.users.get(int(user_id))
        except (TypeError, ValueError):
            user = None
        if user is None:
            raise ActionError(f"unknown user {user_id}")
        return user

    def balance(self, user_id: int) -> int:
        return self.world.star_balance(int(self._user(user_id)["id"]))

    def set_balance(self, user_id: int, balance: Any) -> int:
        user = self._user(user_id)
        if isinstance(balance, bool) or not isinstance(balance, int) or balance < 0:
            raise ActionError("balance must be a non-negative integer")
        self.world.stars[user["id"]] = balance
        self.world.publish(user["id"], {"type": "stars", "balance": balance})
        return balance

    async def pay(
        self,
        chat_id: int,
        message_id: int,
        user_id: int | None = None,
        payload: str | None = None,
        total_amount: int | None = None,
    ) -> Json:
        """The user pays an invoice message; waits for the bot's pre-checkout answer.

        `payload` / `total_amount` replace the invoice's (forged values). Returns
        `{"status": "paid", "telegram_payment_charge_id", "message_id", "balance"}`,
        `{"status": "declined", "error_message"}`, `{"status": "timeout"}` or
        `{"status": "insufficient_balance", "balance"}`.
        """
        world = self.world
        invoice = world.invoices.get((int(chat_id), int(message_id)))
        record = world.messages.get(int(chat_id), {}).get(int(message_id))
        if invoice is None or record is None or record.deleted:
            raise ActionError(f"no invoice message {message_id} in chat {chat_id}")
        user = self._user(chat_id if user_id is None else user_id)
        if invoice.chat_id in world.blocked:
            raise ActionError("the user has blocked the bot")
        if invoice.charge_id is not None:
            raise ActionError("this invoice is already paid")
        if invoice.paying:
            raise ActionError("a payment of this invoice is in progress")
        amount = invoice.amount if total_amount is None else total_amount
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1:
            raise ActionError("total_amount must be a positive integer")
        payload = invoice.payload if payload is None else str(payload)
        balance = world.star_balance(user["id"])
        if balance < amount:
            return {"status": "insufficient_balance", "balance": balance}
        query: Json = {
            "id": str(secrets.randbits(62)),
            "from": user,
            "currency": invoice.currency,
            "total_amount": amount,
            "invoice_payload": payload,
        }
        pending = PreCheckoutRecord(query, user["id"], time.monotonic())
        world.pre_checkouts[query["id"]] = pending
        invoice.paying = True
        try:
            world.push_update("pre_checkout_query", query)
            with contextlib.suppress(TimeoutError):
                await world.wait_for(
                    lambda: pending.answer is not None, world.limits.pre_checkout_timeout
                )
            if pending.answer is None:
                pending.expired = True
                return {"status": "timeout", "pre_checkout_query_id": query["id"]}
            if not pending.answer["ok"]:
                return {"status": "declined", "error_message": pending.answer["error_message"]}
            return self._charge(invoice, user, amount, payload)
        finally:
            invoice.paying = False

    def _charge(self, invoice: InvoiceRecord, user: Json, amount: int, payload: str) -> Json:
        world = self.world
        balance = world.star_balance(user["id"])
        if balance < amount:  # spent elsewhere while the bot was thinking
            return {"status": "insufficient_balance", "balance": balance}
        world.stars[user["id"]] = balance - amount
        charge_id = "stx" + secrets.token_urlsafe(30)
        now = int(time.time())
        message: Json = {
            "message_id": world.next_message_id(invoice.chat_id),
            "from": user,
            "chat": world.chats[invoice.chat_id],
            "date": now,
            "successful_payment": {
                "currency": invoice.currency,
                "total_amount": amount,
                "invoice_payload": payload,
                "telegram_payment_charge_id": charge_id,
                "provider_payment_charge_id": "",
            },
        }
        world.charges[charge_id] = ChargeRecord(
            charge_id,
            user["id"],
            invoice.chat_id,
            invoice.currency,
            amount,
            payload,
            invoice.message_id,
            message,
            now,
        )
        invoice.charge_id = charge_id
        world.add_message(message, outgoing=False)
        world.push_update("message", message)
        world.publish(invoice.chat_id, {"type": "stars", "balance": balance - amount})
        return {
            "status": "paid",
            "telegram_payment_charge_id": charge_id,
            "message_id": message["message_id"],
            "balance": balance - amount,
        }

    def replay(self, charge_id: str) -> Json:
        """Deliver a payment's successful_payment message again (a new update_id)."""
        charge = self.world.charges.get(str(charge_id))
        if charge is None:
            raise ActionError(f"unknown telegram_payment_charge_id {charge_id!r}")
        update_id = self.world.push_update("message", charge.message)
        return {"status": "replayed", "update_id": update_id}

    def summary(self) -> Json:
        """Payments, invoices, pre-checkout queries and star balances."""
        world = self.world
        return {
            "payments": [c.as_json() for c in world.charges.values()],
            "invoices": [i.as_json() for i in world.invoices.values()],
            "pre_checkout_queries": [q.as_json() for q in world.pre_checkouts.values()],
            "balances": {str(uid): world.star_balance(uid) for uid in world.users},
            "bot_balance": world.bot_star_balance(),
        }
