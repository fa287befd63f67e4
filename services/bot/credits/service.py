"""Credits for Telegram Stars: invoices and crediting payments once.

Every balance change is a ledger entry (`services/kit/credits.py`) posted in the same
transaction as the row it pays for, so a payment and its credits commit or vanish together:

* **Payment**: one transaction inserts `star_payments` (`ON CONFLICT DO NOTHING` on the
  charge id) and posts `purchase:<charge id>`. Telegram repeating the update, or the bot
  dying after the commit and the update coming again, finds the row and credits nothing.
  A paid payload that does not hold up (forged, another user's, a package no longer sold)
  is never credited: the Stars go straight back (`refundStarPayment`).
* **Lost payments**: a `successful_payment` whose crediting failed is not sent again;
  `reconcile.py` finds it in Telegram's ledger and brings it through `credit_payment`.
* **Refunds the user asks for** live in `refunds.py` (`Billing.refunds`).

The Telegram side is `StarsApi` (aiogram's `Bot` fits it), so this module has no aiogram
types in its signatures; it knows aiogram's exceptions only to tell a refusal from an outage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import asyncpg
from aiogram.exceptions import TelegramAPIError

from services.bot.app.metrics import BotMetrics
from services.bot.app.pricing import Package, Pricing
from services.bot.credits.invoices import InvoiceSigner, Verdict, judge
from services.bot.credits.refunds import ALREADY_REFUNDED, StarRefunds, StarsApi
from services.kit import credits

log = logging.getLogger(__name__)

#: The `payments` metric's label for a payment credited by reconciliation.
RECONCILED = "reconciled"
_INSERT_PAYMENT = """
INSERT INTO star_payments (telegram_payment_charge_id, user_id, package_id, stars, credits,
    invoice_payload, provider_payment_charge_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (telegram_payment_charge_id) DO NOTHING
RETURNING 1
"""


class PaymentOutcome(StrEnum):
    CREDITED = "credited"
    DUPLICATE = "duplicate"
    REFUNDED_INVALID = "refunded_invalid"  # the payload did not hold up; Stars returned
    INVALID = "invalid"  # ... and returning them failed too (logged as an error)


@dataclass(frozen=True, slots=True)
class Payment:
    """A `successful_payment` as billing needs it."""

    user_id: int
    charge_id: str
    provider_charge_id: str | None
    payload: str
    currency: str
    total_amount: int


@dataclass(frozen=True, slots=True)
class PaymentResult:
    outcome: PaymentOutcome
    credits: int = 0
    balance: int = 0


# What an entry is about, from its key's prefix (the keys `services/kit/credits.py`, this module and
# `refunds.py` write), and what it names: the trained avatar (a charge's subject is its
# id; gone after deletion) or the Stars payment (the charge id ends the key). One query for
# the page; the joins hit primary keys.
_HISTORY = """
WITH page AS (
    SELECT *, CASE
        WHEN idempotency_key ~ '^(refund:)?charge:training:' THEN 'avatar'
        WHEN idempotency_key ~ '^(refund:)?charge:(generation|pack):' THEN 'generation'
        WHEN idempotency_key ~ '^(purchase|payment_refund|payment_refund_reversal):'
            THEN 'payment'
    END AS about
    FROM credit_entries WHERE user_id = $1 ORDER BY seq DESC LIMIT $2
)
SELECT page.*, a.name AS avatar_name, p.stars, p.credits AS package_credits
FROM page
LEFT JOIN avatars a ON a.id = CASE WHEN page.about = 'avatar' THEN page.subject::uuid END
LEFT JOIN star_payments p ON page.about = 'payment'
    AND p.telegram_payment_charge_id = substring(page.idempotency_key from ':(.*)$')
ORDER BY page.seq DESC
"""


class About(StrEnum):
    """What a ledger entry pays for, beyond its kind (a refund is about what it returns)."""

    AVATAR = "avatar"
    GENERATION = "generation"
    PAYMENT = "payment"


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """A ledger entry with what its subject names, since an id means nothing to a user."""

    entry: credits.Entry
    about: About | None
    avatar_name: str | None = None  # the avatar's name, while it exists
    stars: int | None = None  # the Stars payment's price and credits: its package as sold
    package_credits: int | None = None

    @classmethod
    def of(cls, row: asyncpg.Record) -> HistoryItem:
        about = About(row["about"]) if row["about"] is not None else None
        return cls(
            credits.Entry.of(row), about, row["avatar_name"], row["stars"], row["package_credits"]
        )


def purchase_key(charge_id: str) -> str:
    return f"purchase:{charge_id}"


class Billing:
    """Invoices and payments over the bot's pool (see the module doc); `refunds` holds the
    user-requested Stars refunds, so handlers and start-up need this one dependency."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        pricing: Pricing,
        signer: InvoiceSigner,
        stars: StarsApi,
        metrics: BotMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self.pricing = pricing
        self.signer = signer
        self.stars = stars
        self.metrics = metrics
        self.clock = clock
        self.refunds = StarRefunds(pool, pricing, stars, metrics)

    # --- balance -------------------------------------------------------------------------

    async def balance(self, user_id: int) -> int:
        return await credits.balance(self.pool, user_id)

    async def history(self, user_id: int, limit: int = 20) -> list[HistoryItem]:
        """The newest entries first, each with the avatar or package it is about."""
        return [HistoryItem.of(row) for row in await self.pool.fetch(_HISTORY, user_id, limit)]

    # --- invoices and payments -----------------------------------------------------------

    def invoice_payload(self, package: Package, user_id: int) -> str:
        return self.signer.offer(package, user_id, self.clock())

    def check_pre_checkout(
        self, *, user_id: int, payload: str, currency: str, total_amount: int
    ) -> Verdict:
        verdict = judge(
            self.signer.read(payload), payer_id=user_id, currency=currency,
            total_amount=total_amount, pricing=self.pricing, now=self.clock(),
        )  # fmt: skip
        self.metrics.pre_checkouts.labels(verdict.value).inc()
        if verdict is not Verdict.OK:
            log.warning("pre-checkout refused: %s", verdict, extra={"tg_user_id": user_id})
        return verdict

    async def credit_payment(self, payment: Payment, *, reconciled: bool = False) -> PaymentResult:
        """Credit a paid invoice exactly once; an invalid one is refunded, not credited.

        `reconciled`: found in Telegram's ledger, not delivered as an update
        (`reconcile.py`); counted as `payments{outcome="reconciled"}` instead of `credited`,
        so a lost update shows on the dashboard."""
        offer = self.signer.read(payment.payload)
        verdict = judge(
            offer, payer_id=payment.user_id, currency=payment.currency,
            total_amount=payment.total_amount, pricing=self.pricing, now=self.clock(), paid=True,
        )  # fmt: skip
        if verdict is not Verdict.OK or offer is None:
            log.error("paid invoice did not hold up (%s), refunding %s", verdict, payment.charge_id)
            refunded = await self._refund_invalid(payment)
            outcome = PaymentOutcome.REFUNDED_INVALID if refunded else PaymentOutcome.INVALID
            self.metrics.payments.labels(outcome.value).inc()
            return PaymentResult(outcome)
        async with self.pool.acquire() as conn, conn.transaction():
            inserted = await conn.fetchval(
                _INSERT_PAYMENT, payment.charge_id, payment.user_id, offer.package, offer.stars,
                offer.credits, payment.payload, payment.provider_charge_id or None,
            )  # fmt: skip
            if inserted is not None:
                await credits.post(
                    conn, user_id=payment.user_id, kind=credits.Kind.PURCHASE,
                    amount=offer.credits, key=purchase_key(payment.charge_id),
                    subject=offer.package,
                )  # fmt: skip
            balance = await credits.balance(conn, payment.user_id)
        if inserted is None:
            self.metrics.payments.labels(PaymentOutcome.DUPLICATE.value).inc()
            return PaymentResult(PaymentOutcome.DUPLICATE, offer.credits, balance)
        self.metrics.payments.labels(RECONCILED if reconciled else PaymentOutcome.CREDITED).inc()
        self.metrics.stars_revenue.labels(offer.package).inc(offer.stars)
        self.metrics.credits_granted.labels(credits.Kind.PURCHASE.value).inc(offer.credits)
        log.info("stars payment credited", extra={"tg_user_id": payment.user_id})
        return PaymentResult(PaymentOutcome.CREDITED, offer.credits, balance)

    async def uncredited(self, charge_ids: Sequence[str]) -> set[str]:
        """The charge ids among `charge_ids` that no `star_payments` row records."""
        known = await self.pool.fetch(
            "SELECT telegram_payment_charge_id FROM star_payments"
            " WHERE telegram_payment_charge_id = ANY($1::text[])",
            list(charge_ids),
        )
        return set(charge_ids) - {row[0] for row in known}

    async def _refund_invalid(self, payment: Payment) -> bool:
        try:
            await self.stars.refund_star_payment(payment.user_id, payment.charge_id)
        except TelegramAPIError as exc:
            if ALREADY_REFUNDED not in exc.message:
                log.error("could not refund invalid payment %s: %s", payment.charge_id, exc)
                self.metrics.stars_refunds.labels("invalid_failed").inc()
                return False
        self.metrics.stars_refunds.labels("invalid").inc()
        return True
