"""User-requested Stars refunds: the credits go first, then Telegram returns the Stars.

One transaction marks `refund_requested_at` and posts `payment_refund:<charge id>` (the
debit), then commits; only then is Telegram asked to return the Stars, so the credits can
never be spent while the Stars are on their way back. Success (or Telegram's
CHARGE_ALREADY_REFUNDED) stamps `refunded_at`; a definitive refusal posts a reversal
(`payment_refund_reversal:<charge id>`, +credits); a network error leaves the refund pending,
and `resume` retries pending ones at start-up and then periodically.

A purchase is refundable only within `STARS_REFUND_DAYS`, when nothing was spent since it
(no charge entry after its own) and the balance still holds its credits. Kept apart from
`service.py` (crediting payments), which only shares the Telegram call and its
"already refunded" answer.
"""

from __future__ import annotations

import logging
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

from services.bot.app.metrics import BotMetrics
from services.bot.app.pricing import Pricing
from services.kit import credits

log = logging.getLogger(__name__)

ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"
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


class StarsApi(Protocol):
    """The one Bot API call refunds (and `service.py`) make themselves; aiogram's `Bot`
    has this signature, so these modules need no aiogram types."""

    async def refund_star_payment(
        self, user_id: int, telegram_payment_charge_id: str, request_timeout: int | None = None
    ) -> bool: ...


class RefundOutcome(StrEnum):
    REFUNDED = "refunded"
    PENDING = "pending"  # Telegram unreachable; retried at the next start-up
    REFUSED = "refused"  # Telegram said no; the credits were given back
    NOT_FOUND = "not_found"
    ALREADY = "already"
    EXPIRED = "expired"
    SPENT = "spent"


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


class StarRefunds:
    """Refunds of the user's own Stars purchases over the bot's pool (see the module doc)."""

    def __init__(
        self, pool: asyncpg.Pool, pricing: Pricing, stars: StarsApi, metrics: BotMetrics
    ) -> None:
        self.pool = pool
        self.pricing = pricing
        self.stars = stars
        self.metrics = metrics

    async def _balance(self, user_id: int) -> int:
        return await credits.balance(self.pool, user_id)

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

    async def request(self, user_id: int, seq: int) -> RefundResult:
        """Debit the credits and mark the request (one commit), then ask Telegram."""
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                purchase = await self._claim(conn, user_id, seq)
        except _Abort as abort:
            return RefundResult(abort.outcome, balance=await self._balance(user_id))
        except credits.InsufficientCredits:
            return RefundResult(RefundOutcome.SPENT, balance=await self._balance(user_id))
        return await self._settle(purchase)

    async def _claim(self, conn: asyncpg.Connection, user_id: int, seq: int) -> Purchase:
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
                RefundOutcome.PENDING, purchase, await self._balance(purchase.user_id)
            )
        await self.pool.execute(
            "UPDATE star_payments SET refunded_at = now()"
            " WHERE telegram_payment_charge_id = $1 AND refunded_at IS NULL",
            purchase.charge_id,
        )
        self.metrics.stars_refunds.labels(RefundOutcome.REFUNDED.value).inc()
        log.info("stars refunded", extra={"tg_user_id": purchase.user_id})
        return RefundResult(RefundOutcome.REFUNDED, purchase, await self._balance(purchase.user_id))

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

    async def resume(self) -> int:
        """Settle refunds a crash or an outage left pending; how many are now refunded."""
        rows = await self.pool.fetch(_PENDING)
        done = 0
        for row in rows:
            result = await self._settle(Purchase.of(row))
            done += result.outcome is RefundOutcome.REFUNDED
        if rows:
            log.info("resumed %d pending stars refunds, %d refunded", len(rows), done)
        return done
