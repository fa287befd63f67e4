"""The credit ledger (`credit_entries`): every change to a balance is an entry; nothing else.

Why a ledger and not a counter: refunds, disputes and support need the history, and an
append-only record cannot be "fixed" by a stray UPDATE. The balance is derived — the
newest entry's `balance_after`, which the database keeps honest:

* `post` takes a per-user transaction-scoped advisory lock, reads the newest entry and
  appends the next one (`seq + 1`). Writers for one user queue on the lock; writers for
  different users never wait for each other.
* `UNIQUE (user_id, seq)` and `CHECK (balance_after >= 0)` hold even if some future code
  path forgets the lock: a racing writer fails instead of overdrawing.
* `idempotency_key` is unique: the same charge, refund or payment posted twice (a redelivered
  event, a repeated Telegram update, a crash between commit and ack) returns the first
  entry and changes nothing.

`post` must run inside the caller's transaction, so an entry commits or vanishes together
with the state change it pays for (a FAL submission, a payment row, a promo redemption).
Both the bot (purchases, refunds, grants) and the trainer (charges) use this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import asyncpg

__all__ = [
    "Entry",
    "InsufficientCredits",
    "Kind",
    "Posting",
    "balance",
    "charged",
    "entry",
    "generation_charge_key",
    "history",
    "pack_charge_key",
    "post",
    "refund",
    "refund_part",
    "training_charge_key",
]


class Kind(StrEnum):
    TRIAL = "trial"
    PURCHASE = "purchase"
    TRAINING_CHARGE = "training_charge"
    GENERATION_CHARGE = "generation_charge"
    REFUND = "refund"
    ADMIN_GRANT = "admin_grant"
    PROMO = "promo"
    PAYMENT_REFUND = "payment_refund"


class InsufficientCredits(Exception):
    """The entry would take the balance below zero; nothing was written."""

    def __init__(self, balance: int, needed: int):
        super().__init__(f"balance {balance}, needed {needed}")
        self.balance = balance
        self.needed = needed


@dataclass(frozen=True, slots=True)
class Entry:
    user_id: int
    seq: int
    kind: Kind
    amount: int
    balance_after: int
    key: str
    subject: str | None
    reason: str | None
    actor_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, row: asyncpg.Record) -> Entry:
        return cls(
            user_id=row["user_id"],
            seq=row["seq"],
            kind=Kind(row["kind"]),
            amount=row["amount"],
            balance_after=row["balance_after"],
            key=row["idempotency_key"],
            subject=row["subject"],
            reason=row["reason"],
            actor_id=row["actor_id"],
            created_at=row["created_at"],
        )


@dataclass(frozen=True, slots=True)
class Posting:
    entry: Entry
    duplicate: bool  # the key was posted before; `entry` is that first entry


_COLUMNS = (
    "user_id, seq, kind, amount, balance_after, idempotency_key, subject, reason, actor_id,"
    " created_at"
)
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('aisha.credits:' || $1::bigint::text, 0))"
_NEWEST = (
    "SELECT seq, balance_after FROM credit_entries WHERE user_id = $1 ORDER BY seq DESC LIMIT 1"
)
_BY_KEY = f"SELECT {_COLUMNS} FROM credit_entries WHERE idempotency_key = $1"
_INSERT = f"""
INSERT INTO credit_entries (user_id, seq, kind, amount, balance_after, idempotency_key,
    subject, reason, actor_id)
VALUES ($1, $2, $3::credit_kind, $4, $5, $6, $7, $8, $9)
RETURNING {_COLUMNS}
"""


def training_charge_key(avatar_id: str, attempt: int) -> str:
    return f"charge:training:{avatar_id}:{attempt}"


def generation_charge_key(generation_id: str) -> str:
    return f"charge:generation:{generation_id}"


def pack_charge_key(order_id: str) -> str:
    """One entry for a whole pack: its generations carry no charge of their own."""
    return f"charge:pack:{order_id}"


async def balance(conn: asyncpg.Connection | asyncpg.Pool, user_id: int) -> int:
    newest = await conn.fetchrow(_NEWEST, user_id)
    return int(newest["balance_after"]) if newest is not None else 0


async def entry(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> Entry | None:
    row = await conn.fetchrow(_BY_KEY, key)
    return Entry.of(row) if row is not None else None


async def charged(conn: asyncpg.Connection | asyncpg.Pool, key: str) -> int:
    """Credits the charge under `key` took (0: free, or not charged yet): what its refund
    would give back."""
    charge = await entry(conn, key)
    return -charge.amount if charge is not None and charge.amount < 0 else 0


async def history(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: int, limit: int = 20
) -> list[Entry]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM credit_entries WHERE user_id = $1 ORDER BY seq DESC LIMIT $2",
        user_id,
        limit,
    )
    return [Entry.of(row) for row in rows]


async def post(
    conn: asyncpg.Connection,
    *,
    user_id: int,
    kind: Kind,
    amount: int,
    key: str,
    subject: str | None = None,
    reason: str | None = None,
    actor_id: int | None = None,
) -> Posting:
    """Append one entry (amount > 0 credits, < 0 debits) inside the caller's transaction.

    Raises `InsufficientCredits` (writing nothing) when a debit exceeds the balance.
    """
    if amount == 0:
        raise ValueError("a ledger entry moves at least one credit")
    if not conn.is_in_transaction():
        raise RuntimeError("credits.post must run inside the caller's transaction")
    await conn.execute(_LOCK, user_id)
    first = await conn.fetchrow(_BY_KEY, key)
    if first is not None:
        return Posting(Entry.of(first), duplicate=True)
    newest = await conn.fetchrow(_NEWEST, user_id)
    seq, current = (newest["seq"], newest["balance_after"]) if newest else (0, 0)
    if current + amount < 0:
        raise InsufficientCredits(current, -amount)
    row = await conn.fetchrow(
        _INSERT, user_id, seq + 1, kind.value, amount, current + amount, key, subject,
        reason, actor_id,
    )  # fmt: skip
    return Posting(Entry.of(row), duplicate=False)


async def refund(conn: asyncpg.Connection, *, charge_key: str, reason: str) -> Posting | None:
    """Give back what `charge_key` took (once); None when nothing was charged."""
    charge = await entry(conn, charge_key)
    if charge is None or charge.amount >= 0:
        return None
    return await post(
        conn,
        user_id=charge.user_id,
        kind=Kind.REFUND,
        amount=-charge.amount,
        key=f"refund:{charge_key}",
        subject=charge.subject,
        reason=reason,
    )


async def refund_part(
    conn: asyncpg.Connection, *, charge_key: str, part: str, amount: int, reason: str
) -> Posting | None:
    """Give back `amount` of what `charge_key` took, once per `part` (a pack's generation);
    never more than was charged. None when nothing was charged or nothing is due."""
    charge = await entry(conn, charge_key)
    if charge is None or charge.amount >= 0 or amount <= 0:
        return None
    return await post(
        conn,
        user_id=charge.user_id,
        kind=Kind.REFUND,
        amount=min(amount, -charge.amount),
        key=f"refund:{charge_key}:{part}",
        subject=charge.subject,
        reason=reason,
    )
