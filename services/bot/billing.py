"""Credits for Telegram Stars: invoices, crediting payments once, refunds.

Every balance change is a ledger entry (`services/kit/credits.py`) posted in the same
transaction as the row it pays for, so a payment and its credits commit or vanish together:

* **Payment**: one transaction inserts `star_payments` (`ON CONFLICT DO NOTHING` on the
  charge id) and posts `purchase:<charge id>`. Telegram repeating the update, or the bot
  dying after the commit and the update coming again, finds the row and credits nothing.
  A paid payload that does not hold up (forged, another user's, a package no longer sold)
  is never credited: the Stars go straight back (`refundStarPayment`).
* **Refund**: one transaction marks `refund_requested_at` and posts `payment_refund:<charge
  id>` (the debit), then commits; only then is Telegram asked to return the Stars, so the
  credits can never be spent while the Stars are on their way back. Success (or Telegram's
  CHARGE_ALREADY_REFUNDED) stamps `refunded_at`; a definitive refusal posts a reversal
  (`payment_refund_reversal:<charge id>`, +credits); a network error leaves the refund
  pending, and `resume_refunds` retries pending ones at start-up and then periodically.
* **Lost payments**: a `successful_payment` whose crediting failed is not sent again;
  `reconcile.py` finds it in Telegram's ledger and brings it through `credit_payment`.

The Telegram side is `StarsApi` (aiogram's `Bot` fits it), so this module has no aiogram
types in its signatures; it knows aiogram's exceptions only to tell a refusal from an outage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import asyncpg
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
)

from services.bot.invoices import InvoiceSigner, Verdict, judge
from services.bot.metrics import BotMetrics
from services.bot.pricing import Package, Pricing
from services.kit import credits

log = logging.getLogger(__name__)

ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"
#: The `payments` metric's label for a payment credited by reconciliation.
RECONCILED = "reconciled"
#: A refund requested this long ago and still unsettled is no longer being handled by a
#: live handler (that takes one Telegram call) — start-up may safely take it over.
RESUME_AFTER = "1 minute"
_SPENDING = "('training_charge', 'generation_charge')"
_PURCHASE_COLUMNS = """
SELECT e.seq, p.telegram_payment_charge_id AS charge_id, p.user_id, p.package_id, p.stars,
       p.credits, p.paid_at, p.refund_requested_at
FROM star_payments p
JOIN credit_entries e ON e.idempotency_key = 'purchase:' || p.telegram_payment_charge_id
"""
_IN_WINDOW = "p.paid_at > now() - make_interval(days => $2)"
_REFUNDABLE = f"""{_PURCHASE_COLUMNS}
WHERE p.user_id = $1 AND p.refund_requested_at IS NULL AND {_IN_WINDOW}
  AND NOT EXISTS (SELECT 1 FROM credit_entries c
                  WHERE c.user_id = $1 AND c.seq > e.seq AND c.kind IN {_SPENDING})
ORDER BY e.seq DESC LIMIT 5
"""
_ONE_PURCHASE = f"""
SELECT *, {_IN_WINDOW} AS in_window FROM ({_PURCHASE_COLUMNS}) p
WHERE p.user_id = $1 AND p.seq = $3
"""
_PENDING = f"""{_PURCHASE_COLUMNS}
WHERE p.refund_requested_at < now() - interval '{RESUME_AFTER}' AND p.refunded_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM credit_entries r WHERE r.idempotency_key
                  = 'payment_refund_reversal:' || p.telegram_payment_charge_id)
"""
_SPENT_BETWEEN = f"""
SELECT EXISTS (SELECT 1 FROM credit_entries
               WHERE user_id = $1 AND seq > $2 AND seq < $3 AND kind IN {_SPENDING})
"""
_INSERT_PAYMENT = """
INSERT INTO star_payments (telegram_payment_charge_id, user_id, package_id, stars, credits,
    invoice_payload, provider_payment_charge_id)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (telegram_payment_charge_id) DO NOTHING
RETURNING 1
"""


class StarsApi(Protocol):
    """The one Bot API call billing makes itself (aiogram's `Bot` has this signature)."""

    async def refund_star_payment(
        self, user_id: int, telegram_payment_charge_id: str, request_timeout: int | None = None
    ) -> bool: ...


class PaymentOutcome(StrEnum):
    CREDITED = "credited"
    DUPLICATE = "duplicate"
    REFUNDED_INVALID = "refunded_invalid"  # the payload did not hold up; Stars returned
    INVALID = "invalid"  # ... and returning them failed too (logged as an error)


class RefundOutcome(StrEnum):
    REFUNDED = "refunded"
    PENDING = "pending"  # Telegram unreachable; retried at the next start-up
    REFUSED = "refused"  # Telegram said no; the credits were given back
    NOT_FOUND = "not_found"
    ALREADY = "already"
    EXPIRED = "expired"
    SPENT = "spent"


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


@dataclass(frozen=True, slots=True)
class Purchase:
    """A Stars payment as the user sees it; `seq` (its ledger entry) is its id in buttons."""

    seq: int
    charge_id: str
    user_id: int
    package_id: str
    stars: int
    credits: int
    paid_at: datetime

    @classmethod
    def of(cls, row: asyncpg.Record) -> Purchase:
        return cls(**{f: row[f] for f in cls.__dataclass_fields__})


@dataclass(frozen=True, slots=True)
class RefundResult:
    outcome: RefundOutcome
    purchase: Purchase | None = None
    balance: int = 0


class _Abort(Exception):
    """Roll the refund transaction back and answer `outcome`."""

    def __init__(self, outcome: RefundOutcome) -> None:
        self.outcome = outcome


def purchase_key(charge_id: str) -> str:
    return f"purchase:{charge_id}"


class Billing:
    """Invoices, payments and refunds over the bot's pool (see the module doc)."""

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

    # --- balance -------------------------------------------------------------------------

    async def balance(self, user_id: int) -> int:
        return await credits.balance(self.pool, user_id)

    async def history(self, user_id: int, limit: int = 20) -> list[credits.Entry]:
        return await credits.history(self.pool, user_id, limit)

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

    # --- refunds -------------------------------------------------------------------------

    async def refundable(self, user_id: int) -> list[Purchase]:
        """Purchases the user may still refund: their own, unrefunded, within the window,
        nothing spent since, and the balance still holds their credits."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_REFUNDABLE, user_id, self.pricing.refund_days)
            balance = await credits.balance(conn, user_id)
        return [p for p in map(Purchase.of, rows) if p.credits <= balance]

    async def purchase(self, user_id: int, seq: int) -> Purchase | None:
        row = await self.pool.fetchrow(_ONE_PURCHASE, user_id, self.pricing.refund_days, seq)
        return Purchase.of(row) if row is not None else None

    async def request_refund(self, user_id: int, seq: int) -> RefundResult:
        """Debit the credits and mark the request (one commit), then ask Telegram."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                purchase = await self._claim_refund(conn, user_id, seq)
        except _Abort as abort:
            return RefundResult(abort.outcome, balance=await self.balance(user_id))
        except credits.InsufficientCredits:
            return RefundResult(RefundOutcome.SPENT, balance=await self.balance(user_id))
        return await self._settle(purchase)

    async def _claim_refund(self, conn: asyncpg.Connection, user_id: int, seq: int) -> Purchase:
        row = await conn.fetchrow(_ONE_PURCHASE, user_id, self.pricing.refund_days, seq)
        if row is None:
            raise _Abort(RefundOutcome.NOT_FOUND)
        if row["refund_requested_at"] is not None:
            raise _Abort(RefundOutcome.ALREADY)
        if not row["in_window"]:
            raise _Abort(RefundOutcome.EXPIRED)
        purchase = Purchase.of(row)
        marked = await conn.fetchval(
            "UPDATE star_payments SET refund_requested_at = now()"
            " WHERE telegram_payment_charge_id = $1 AND refund_requested_at IS NULL RETURNING 1",
            purchase.charge_id,
        )
        if marked is None:  # a concurrent request won
            raise _Abort(RefundOutcome.ALREADY)
        posting = await credits.post(
            conn, user_id=user_id, kind=credits.Kind.PAYMENT_REFUND, amount=-purchase.credits,
            key=f"payment_refund:{purchase.charge_id}", subject=purchase.package_id,
        )  # fmt: skip
        # `post` holds the ledger lock until commit, so no charge can slip in after this check.
        if await conn.fetchval(_SPENT_BETWEEN, user_id, seq, posting.entry.seq):
            raise _Abort(RefundOutcome.SPENT)
        return purchase

    async def _settle(self, purchase: Purchase) -> RefundResult:
        """Ask Telegram to return the Stars of a claimed refund and record the answer."""
        try:
            await self.stars.refund_star_payment(purchase.user_id, purchase.charge_id)
        except (TelegramBadRequest, TelegramForbiddenError, TelegramNotFound) as exc:
            if ALREADY_REFUNDED not in exc.message:
                return await self._reverse(purchase, exc.message)
        except TelegramAPIError as exc:  # network, 5xx, flood control: try again later
            log.warning("stars refund of %s pending: %s", purchase.charge_id, exc)
            self.metrics.stars_refunds.labels(RefundOutcome.PENDING.value).inc()
            return RefundResult(
                RefundOutcome.PENDING, purchase, await self.balance(purchase.user_id)
            )
        await self.pool.execute(
            "UPDATE star_payments SET refunded_at = now()"
            " WHERE telegram_payment_charge_id = $1 AND refunded_at IS NULL",
            purchase.charge_id,
        )
        self.metrics.stars_refunds.labels(RefundOutcome.REFUNDED.value).inc()
        log.info("stars refunded", extra={"tg_user_id": purchase.user_id})
        return RefundResult(RefundOutcome.REFUNDED, purchase, await self.balance(purchase.user_id))

    async def _reverse(self, purchase: Purchase, why: str) -> RefundResult:
        """Telegram will not refund: give the credits back (the request stays recorded)."""
        log.error("stars refund of %s refused: %s", purchase.charge_id, why)
        async with self.pool.acquire() as conn, conn.transaction():
            await credits.post(
                conn, user_id=purchase.user_id, kind=credits.Kind.REFUND,
                amount=purchase.credits, key=f"payment_refund_reversal:{purchase.charge_id}",
                subject=purchase.package_id, reason=f"stars refund refused: {why}"[:200],
            )  # fmt: skip
            balance = await credits.balance(conn, purchase.user_id)
        self.metrics.stars_refunds.labels(RefundOutcome.REFUSED.value).inc()
        return RefundResult(RefundOutcome.REFUSED, purchase, balance)

    async def resume_refunds(self) -> int:
        """Settle refunds a crash or an outage left pending; how many are now refunded."""
        rows = await self.pool.fetch(_PENDING)
        done = 0
        for row in rows:
            result = await self._settle(Purchase.of(row))
            done += result.outcome is RefundOutcome.REFUNDED
        if rows:
            log.info("resumed %d pending stars refunds, %d refunded", len(rows), done)
        return done
