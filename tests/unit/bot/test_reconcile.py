"""Reconciliation (`services/bot/credits/reconcile.py`) without a database or Telegram.

Telegram documents getStarTransactions as chronological; whichever order a page comes in,
every transaction of the window must be found, newest-first paging must stop at the first
page reaching past the window, and oldest-first paging must not re-read the pages before
the window on the next round. Only incoming invoice payments are payments, and the metric
outcomes the payment alerts watch exist before the first event.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from aiogram.types import StarTransaction, StarTransactions, TransactionPartnerUser, User

from services.bot.app.metrics import ALERTED_PRE_CHECKOUTS, PAYMENT_OUTCOMES, BotMetrics
from services.bot.credits.invoices import Verdict
from services.bot.credits.reconcile import PAGE, PaymentReconciler, as_payment
from services.bot.credits.service import RECONCILED, Billing, PaymentOutcome

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
START = NOW - timedelta(days=14)


def partner(payload: str | None = "v1.payload", kind: str = "invoice_payment") -> Any:
    user = User(id=42, is_bot=False, first_name="Payer")
    return TransactionPartnerUser(transaction_type=kind, user=user, invoice_payload=payload)


def ledger(count: int, in_window: int) -> list[StarTransaction]:
    """`count` payments one hour apart, oldest first; the last `in_window` are in the window."""
    first = START - timedelta(hours=count - in_window) + timedelta(minutes=30)
    return [
        StarTransaction(id=f"stx{i}", amount=50, date=first + timedelta(hours=i), source=partner())
        for i in range(count)
    ]


class FakeStars:
    def __init__(self, transactions: list[StarTransaction]) -> None:
        self.transactions = transactions
        self.offsets: list[int] = []

    async def get_star_transactions(
        self,
        offset: int | None = None,
        limit: int | None = None,
        request_timeout: int | None = None,
    ) -> StarTransactions:
        self.offsets.append(offset or 0)
        start = offset or 0
        return StarTransactions(transactions=self.transactions[start : start + (limit or PAGE)])


def reconciler(stars: FakeStars) -> PaymentReconciler:
    return PaymentReconciler(cast(Billing, None), stars)


async def test_newest_first_stops_at_the_first_page_past_the_window() -> None:
    stars = FakeStars(list(reversed(ledger(1000, 150))))
    found = await reconciler(stars).transactions_since(START)
    assert {tx.id for tx in found} == {f"stx{i}" for i in range(850, 1000)}
    assert stars.offsets == [0, 100]


async def test_oldest_first_finds_the_window_and_skips_old_pages_next_round() -> None:
    stars = FakeStars(ledger(1000, 150))
    paging = reconciler(stars)
    found = await paging.transactions_since(START)
    assert {tx.id for tx in found} == {f"stx{i}" for i in range(850, 1000)}
    assert stars.offsets == list(range(0, 1001, 100))
    stars.offsets.clear()
    again = await paging.transactions_since(START)
    assert {tx.id for tx in again} == {tx.id for tx in found}
    assert stars.offsets == [800, 900, 1000]


async def test_a_short_ledger_takes_one_call() -> None:
    stars = FakeStars(ledger(30, 10))
    found = await reconciler(stars).transactions_since(START)
    assert [tx.id for tx in found] == [f"stx{i}" for i in range(20, 30)]
    assert stars.offsets == [0]


def test_only_incoming_invoice_payments_are_payments() -> None:
    date = NOW - timedelta(hours=1)
    paid = StarTransaction(id="stx1", amount=250, date=date, source=partner("v1.abc"))
    payment = as_payment(paid)
    assert payment is not None
    assert (payment.user_id, payment.charge_id, payment.payload) == (42, "stx1", "v1.abc")
    assert (payment.currency, payment.total_amount) == ("XTR", 250)
    others = [
        StarTransaction(id="stx1", amount=250, date=date, receiver=partner()),  # a refund
        StarTransaction(id="stx2", amount=5, date=date, source=partner(kind="paid_media_payment")),
        StarTransaction(id="stx3", amount=5, date=date, source=partner(payload=None)),
    ]
    assert [as_payment(tx) for tx in others] == [None, None, None]


def test_every_payment_outcome_is_exported_from_the_start() -> None:
    """The alerts on lost updates and tampered invoices see the first one (see metrics.py)."""
    assert set(PAYMENT_OUTCOMES) == {o.value for o in PaymentOutcome} | {RECONCILED}
    assert set(ALERTED_PRE_CHECKOUTS) <= {v.value for v in Verdict}
    metrics = BotMetrics()
    for outcome in PAYMENT_OUTCOMES:
        labels = {"outcome": outcome}
        assert metrics.registry.get_sample_value("aisha_bot_payments_total", labels) == 0
