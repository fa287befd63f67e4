"""Crediting Stars payments whose `successful_payment` update was never handled.

Why: Telegram forgets an update once it is confirmed, and aiogram confirms a batch (the next
getUpdates; in webhook mode, its instant 200) while the handlers still run. A payment whose
crediting failed — the database down, the process killed between the update and the commit
— never comes again, yet the user's Stars are gone. Telegram's ledger still has it:
`getStarTransactions` lists each incoming payment with its charge id (= the update's
`telegram_payment_charge_id`) and invoice payload. Every one that `star_payments` lacks
goes through `Billing.credit_payment`, the handler's own path, so it is credited at most
once (a live handler racing us finds the row), a payload that does not hold up is refunded
instead, and the metric counts it as `payments{outcome="reconciled"}`.

Bounds: only the last `STARS_REFUND_DAYS` (at least a day) are looked at, and nothing
younger than `GRACE`, which a live handler may still be crediting. Telegram documents the
list as chronological, but the paging does not rely on the order: newest first stops at the
first page that reaches past the window; oldest first remembers where the window begins,
so later rounds skip the pages before it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from aiogram.types import StarTransaction, StarTransactions, TransactionPartnerUser

from services.bot.app import main_menu as menu
from services.bot.app.sender import Sender
from services.bot.app.texts import DEFAULT_LANGUAGE, Texts, Translator
from services.bot.avatars.service import AvatarService
from services.bot.credits.invoices import CURRENCY
from services.bot.credits.service import Billing, Payment, PaymentOutcome, PaymentResult

log = logging.getLogger(__name__)

#: A payment younger than this may still be in the hands of the `successful_payment` handler.
GRACE = timedelta(minutes=1)
PAGE = 100  # Telegram's maximum
INVOICE_PAYMENT = "invoice_payment"
#: What the payer is told about (an `invalid` payment is retried every round: said nothing).
TOLD = frozenset({PaymentOutcome.CREDITED, PaymentOutcome.REFUNDED_INVALID})

Notify = Callable[[Payment, PaymentResult], Awaitable[None]]


class TransactionsApi(Protocol):
    """The Bot API call reconciliation makes (aiogram's `Bot` has this signature)."""

    async def get_star_transactions(
        self,
        offset: int | None = None,
        limit: int | None = None,
        request_timeout: int | None = None,
    ) -> StarTransactions: ...


def as_payment(tx: StarTransaction) -> Payment | None:
    """An incoming invoice payment from a user, as its `successful_payment` said it."""
    source = tx.source
    if not isinstance(source, TransactionPartnerUser) or source.invoice_payload is None:
        return None
    if source.transaction_type != INVOICE_PAYMENT:
        return None
    return Payment(source.user.id, tx.id, None, source.invoice_payload, CURRENCY, tx.amount)


class PaymentReconciler:
    """One `reconcile()` per round (see the module doc); `notify` tells the payer."""

    def __init__(self, billing: Billing, stars: TransactionsApi, notify: Notify | None = None):
        self.billing = billing
        self.stars = stars
        self.notify = notify
        self._skip = 0  # oldest-first paging: every transaction before this is out of window

    async def reconcile(self) -> int:
        """Credit the recent payments `star_payments` lacks; how many were credited."""
        now = datetime.fromtimestamp(self.billing.clock(), UTC)
        window = await self.transactions_since(
            now - timedelta(days=max(self.billing.pricing.refund_days, 1))
        )
        refunded = {tx.id for tx in window if tx.receiver is not None}
        payments = [
            payment
            for tx in window
            if tx.date <= now - GRACE and tx.id not in refunded
            and (payment := as_payment(tx)) is not None
        ]  # fmt: skip
        missing = await self.billing.uncredited([p.charge_id for p in payments])
        credited = 0
        for payment in (p for p in payments if p.charge_id in missing):
            result = await self.billing.credit_payment(payment, reconciled=True)
            log.warning(
                "stars payment %s had not been handled: %s", payment.charge_id, result.outcome,
                extra={"tg_user_id": payment.user_id},
            )  # fmt: skip
            credited += result.outcome is PaymentOutcome.CREDITED
            if self.notify is not None and result.outcome in TOLD:
                await self.notify(payment, result)
        return credited

    async def transactions_since(self, start: datetime) -> list[StarTransaction]:
        """The bot's transactions dated `start` or later, paged in either order."""
        found: list[StarTransaction] = []
        offset = self._skip
        while True:
            result = await self.stars.get_star_transactions(offset=offset, limit=PAGE)
            page = result.transactions
            found += [tx for tx in page if tx.date >= start]
            if len(page) < PAGE:
                return found
            first, last = page[0].date, page[-1].date
            if last < first and last < start:  # newest first: the rest is older still
                return found
            if first < last < start:  # oldest first: this whole page is out of every window
                self._skip = offset + len(page)
            offset += len(page)


class PaymentNotices:
    """Tells the payer what reconciliation did, in the words the handler would have used."""

    def __init__(self, sender: Sender, texts: Texts, avatars: AvatarService) -> None:
        self.sender = sender
        self.texts = texts
        self.avatars = avatars

    async def __call__(self, payment: Payment, result: PaymentResult) -> None:
        lang = await self.avatars.user_language(payment.user_id) or DEFAULT_LANGUAGE
        t = Translator(self.texts, lang)
        key = f"credits.payment_{result.outcome.value}"
        text = t(key, credits=result.credits, balance=result.balance)
        await self.sender.send(payment.user_id, text, menu.main_menu(t))
