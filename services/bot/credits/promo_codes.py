"""Credits nobody paid Stars for: promo codes and admin grants.

Both are ledger entries like any other (`services/kit/credits.py`), posted in the same
transaction as the row that justifies them:

* **Promo code**: the redemption row (one per user and code: the primary key), the use
  counter (`UPDATE ... WHERE uses < max_uses AND expires_at > now()`: the row lock makes
  concurrent redeemers queue, and the condition is re-checked after the wait, so a code with
  10 uses credits exactly 10 users however many press at once) and the `promo:<CODE>:<user>`
  entry commit together or not at all.
* **Admin grant**: keyed by the admin's chat and message id, so a re-delivered `/grant`
  update grants once; only to users the bot knows.

Argument parsing lives here too (pure functions), so handlers only translate.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

from services.bot.app.metrics import BotMetrics
from services.bot.app.names import printable
from services.kit import credits

log = logging.getLogger(__name__)

MAX_PROMO_CREDITS = 100_000
MAX_PROMO_DAYS = 365
MAX_PROMO_USES = 1_000_000
MAX_GRANT = 100_000
_CODE = re.compile(r"^[A-Z0-9_-]{3,32}$")
_NUMBER = re.compile(r"^\d{1,9}$")
_USER_ID = re.compile(r"^[1-9]\d{0,18}$")
_CLAIM_USE = """
UPDATE promo_codes SET uses = uses + 1
WHERE code = $1 AND uses < max_uses AND expires_at > now()
RETURNING credits
"""
_WHY_NOT = """
SELECT expires_at <= now() AS expired,
       EXISTS (SELECT 1 FROM promo_redemptions r WHERE r.code = c.code AND r.user_id = $2)
           AS already
FROM promo_codes c WHERE code = $1
"""


class PromoOutcome(StrEnum):
    """Locale keys `credits.promo_<value>` and metric labels."""

    OK = "ok"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED_UP = "used_up"
    ALREADY = "already"


class ArgError(StrEnum):
    """What is wrong with an admin command's arguments (locale keys `admin.<value>`)."""

    PROMO_USAGE = "promo_usage"
    PROMO_BAD_CODE = "promo_bad_code"
    PROMO_BAD_CREDITS = "promo_bad_credits"
    PROMO_BAD_DAYS = "promo_bad_days"
    PROMO_BAD_USES = "promo_bad_uses"
    GRANT_USAGE = "grant_usage"
    GRANT_BAD_USER = "grant_bad_user"
    GRANT_BAD_AMOUNT = "grant_bad_amount"


class GrantOutcome(StrEnum):
    GRANTED = "granted"
    DUPLICATE = "duplicate"
    UNKNOWN_USER = "unknown_user"


@dataclass(frozen=True, slots=True)
class PromoSpec:
    code: str
    credits: int
    days: int
    uses: int


@dataclass(frozen=True, slots=True)
class Redemption:
    outcome: PromoOutcome
    credits: int = 0
    balance: int = 0


@dataclass(frozen=True, slots=True)
class GrantRequest:
    user_id: int
    amount: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class GrantResult:
    outcome: GrantOutcome
    entry: credits.Entry | None = None
    balance: int = 0


class _Rollback(Exception):
    """Undo the redemption's writes and answer `outcome`."""

    def __init__(self, outcome: PromoOutcome) -> None:
        self.outcome = outcome


def normalize_code(raw: str) -> str | None:
    """Codes are case-insensitive for users; stored upper-case. None: not a possible code."""
    code = raw.strip().upper()
    return code if _CODE.match(code) else None


def _within(raw: str, low: int, high: int) -> int | None:
    return int(raw) if _NUMBER.match(raw) and low <= int(raw) <= high else None


def parse_promo(args: str) -> PromoSpec | ArgError:
    """`CODE CREDITS DAYS USES`, each within its bounds."""
    parts = args.split()
    if len(parts) != 4:
        return ArgError.PROMO_USAGE
    code = normalize_code(parts[0])
    credit = _within(parts[1], 1, MAX_PROMO_CREDITS)
    days = _within(parts[2], 1, MAX_PROMO_DAYS)
    uses = _within(parts[3], 1, MAX_PROMO_USES)
    if code is None:
        return ArgError.PROMO_BAD_CODE
    if credit is None:
        return ArgError.PROMO_BAD_CREDITS
    if days is None:
        return ArgError.PROMO_BAD_DAYS
    if uses is None:
        return ArgError.PROMO_BAD_USES
    return PromoSpec(code, credit, days, uses)


def parse_grant(args: str) -> GrantRequest | ArgError:
    """`USER_ID AMOUNT [reason]`; the reason is kept printable and at most 200 chars."""
    parts = args.split(maxsplit=2)
    if len(parts) < 2:
        return ArgError.GRANT_USAGE
    if not _USER_ID.match(parts[0]):
        return ArgError.GRANT_BAD_USER
    amount = _within(parts[1], 1, MAX_GRANT)
    if amount is None:
        return ArgError.GRANT_BAD_AMOUNT
    reason = printable(parts[2], 200) if len(parts) > 2 else None
    return GrantRequest(int(parts[0]), amount, reason)


def parse_user_id(args: str) -> int | None:
    raw = args.strip()
    return int(raw) if _USER_ID.match(raw) else None


class FreeCredits:
    """Creating and redeeming promo codes; admin grants (see the module doc)."""

    def __init__(self, pool: asyncpg.Pool, metrics: BotMetrics) -> None:
        self.pool = pool
        self.metrics = metrics

    async def create(self, spec: PromoSpec, *, admin_id: int) -> datetime | None:
        """The new code's expiry, or None when the code already exists."""
        expires: datetime | None = await self.pool.fetchval(
            "INSERT INTO promo_codes (code, credits, max_uses, expires_at, created_by)"
            " VALUES ($1, $2, $3, now() + make_interval(days => $4), $5)"
            " ON CONFLICT (code) DO NOTHING RETURNING expires_at",
            spec.code, spec.credits, spec.uses, spec.days, admin_id,
        )  # fmt: skip
        if expires is not None:
            log.info("promo code created", extra={"admin_id": admin_id})
        return expires

    async def redeem(self, user_id: int, raw_code: str) -> Redemption:
        code = normalize_code(raw_code)
        result = await self._redeem(user_id, code) if code else Redemption(PromoOutcome.UNKNOWN)
        self.metrics.promo_redemptions.labels(result.outcome.value).inc()
        if result.outcome is PromoOutcome.OK:
            self.metrics.credits_granted.labels(credits.Kind.PROMO.value).inc(result.credits)
        return result

    async def _redeem(self, user_id: int, code: str) -> Redemption:
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    amount = await conn.fetchval(_CLAIM_USE, code)
                    if amount is None:
                        raise _Rollback(await self._why_not(conn, user_id, code))
                    inserted = await conn.fetchval(
                        "INSERT INTO promo_redemptions (code, user_id) VALUES ($1, $2)"
                        " ON CONFLICT DO NOTHING RETURNING 1",
                        code, user_id,
                    )  # fmt: skip
                    if inserted is None:  # rolls the use back too
                        raise _Rollback(PromoOutcome.ALREADY)
                    posting = await credits.post(
                        conn, user_id=user_id, kind=credits.Kind.PROMO, amount=amount,
                        key=f"promo:{code}:{user_id}", subject=code,
                    )  # fmt: skip
            except _Rollback as rollback:
                return Redemption(rollback.outcome)
        return Redemption(PromoOutcome.OK, amount, posting.entry.balance_after)

    @staticmethod
    async def _why_not(conn: asyncpg.Connection, user_id: int, code: str) -> PromoOutcome:
        row = await conn.fetchrow(_WHY_NOT, code, user_id)
        if row is None:
            return PromoOutcome.UNKNOWN
        if row["already"]:
            return PromoOutcome.ALREADY
        return PromoOutcome.EXPIRED if row["expired"] else PromoOutcome.USED_UP

    async def grant(self, request: GrantRequest, *, admin_id: int, key: str) -> GrantResult:
        """Add credits to a user the bot knows, once per `key` (the admin's message)."""
        async with self.pool.acquire() as conn, conn.transaction():
            if await conn.fetchval("SELECT 1 FROM users WHERE id = $1", request.user_id) is None:
                return GrantResult(GrantOutcome.UNKNOWN_USER)
            posting = await credits.post(
                conn, user_id=request.user_id, kind=credits.Kind.ADMIN_GRANT,
                amount=request.amount, key=key, reason=request.reason, actor_id=admin_id,
            )  # fmt: skip
            balance = await credits.balance(conn, request.user_id)
        if posting.duplicate:
            return GrantResult(GrantOutcome.DUPLICATE, posting.entry, balance)
        self.metrics.credits_granted.labels(credits.Kind.ADMIN_GRANT.value).inc(request.amount)
        log.info("credits granted", extra={"tg_user_id": request.user_id, "admin_id": admin_id})
        return GrantResult(GrantOutcome.GRANTED, posting.entry, balance)

    async def known(self, user_id: int) -> bool:
        """A user of the bot, or someone with ledger entries (who may have erased the rest)."""
        found: bool | None = await self.pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)"
            " OR EXISTS (SELECT 1 FROM credit_entries WHERE user_id = $1)",
            user_id,
        )
        return bool(found)
