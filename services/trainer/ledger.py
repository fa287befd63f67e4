"""The `fal_submissions` ledger both kinds of job share: one FAL job per idempotency key.

A row per key (`training:<avatar>:<attempt>`, `generation:<id>`) moves to `submitting`
just before FAL is called, then `submitted` with FAL's request id (or `failed`,
`cancelled`). A delivery that finds `submitting` cannot know whether FAL accepted the job —
an orphan — and must not submit again; it waits for the job's webhook (`orphans.py`).
Both pass through `preparing` first, under a lease (`updated_at`, compare-and-set): a
delivery that died while preparing (building an archive, planning a generation) left no
job at FAL, so the next delivery takes the row over and submits. This module holds the
statements that are the same for both; the step that runs them is `submission.py`.
"""

from __future__ import annotations

import enum
from datetime import datetime

import asyncpg

from contracts import Event
from services.kit import credits
from services.kit.db import UnitOfWork


class Marked(enum.Enum):
    """What `mark_submitted` found: the answer recorded, or the row gone on without it."""

    SUBMITTED = "submitted"
    #: A redelivery adopted this very job from its webhook while FAL was answering.
    ADOPTED = "adopted"
    #: Cancelled, or given up on meanwhile: the request id is kept, the job is not wanted.
    MOVED_ON = "moved_on"


async def charge(
    conn: asyncpg.Connection,
    *,
    user_id: int,
    kind: credits.Kind,
    amount: int,
    key: str,
    subject: str,
) -> bool:
    """Debit the quoted credits with the reservation; False for a free job or a repeat."""
    if amount <= 0:
        return False
    posting = await credits.post(
        conn, user_id=user_id, kind=kind, amount=-amount, key=key, subject=subject
    )
    return not posting.duplicate


async def refuse_unpaid(
    pool: asyncpg.Pool,
    *,
    kind: str,
    subject_id: str,
    attempt: int,
    key: str,
    endpoint: str,
    failed: Event,
) -> bool:
    """Record a request the balance cannot pay for as `failed` (FAL never called) and
    publish its failure, exactly once however often the request is redelivered."""
    async with UnitOfWork(pool, "trainer") as uow:
        recorded = await uow.conn.fetchval(
            "INSERT INTO fal_submissions (kind, subject_id, attempt, idempotency_key, endpoint,"
            " state, error) VALUES ($1, $2, $3, $4, $5, 'failed', 'insufficient credits')"
            " ON CONFLICT (idempotency_key) DO NOTHING RETURNING 1",
            kind,
            subject_id,
            attempt,
            key,
            endpoint,
        )
        if recorded:
            uow.publish(failed)
    return bool(recorded)


async def existing(pool: asyncpg.Pool, key: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(
        "SELECT state, request_id, endpoint, created_at, updated_at FROM fal_submissions"
        " WHERE idempotency_key = $1",
        key,
    )
    return row


async def mark_submitted(conn: asyncpg.Connection, key: str, request_id: str) -> Marked:
    """`submitting` → `submitted` with FAL's answer, inside the caller's transaction; when
    the row moved on meanwhile, the request id is still recorded (unless adopted)."""
    if await conn.fetchval(
        "UPDATE fal_submissions SET state = 'submitted', request_id = $2,"
        " submitted_at = now(), updated_at = now()"
        " WHERE idempotency_key = $1 AND state = 'submitting' RETURNING 1",
        key,
        request_id,
    ):
        return Marked.SUBMITTED
    if await conn.fetchval(
        "SELECT 1 FROM fal_submissions WHERE idempotency_key = $1"
        " AND state = 'submitted' AND request_id = $2",
        key,
        request_id,
    ):
        return Marked.ADOPTED
    await conn.execute(
        "UPDATE fal_submissions SET request_id = $2, updated_at = now() WHERE idempotency_key = $1",
        key,
        request_id,
    )
    return Marked.MOVED_ON


async def mark_failed(conn: asyncpg.Connection, key: str, detail: str) -> None:
    """The attempt is over without a job (or with one given up on): `failed`, and why."""
    await conn.execute(
        "UPDATE fal_submissions SET state = 'failed', error = $2, updated_at = now()"
        " WHERE idempotency_key = $1",
        key,
        detail[:500],
    )


async def begin_submit(pool: asyncpg.Pool, key: str, lease: datetime) -> datetime | None:
    """`preparing` → `submitting` if the lease is still ours; the new lease, else None."""
    renewed: datetime | None = await pool.fetchval(
        "UPDATE fal_submissions SET state = 'submitting', updated_at = clock_timestamp()"
        " WHERE idempotency_key = $1 AND state = 'preparing' AND updated_at = $2"
        " RETURNING updated_at",
        key,
        lease,
    )
    return renewed


async def release(pool: asyncpg.Pool, key: str, lease: datetime) -> None:
    """Drop our row when FAL was not called or refused (no job exists), so a later
    delivery starts afresh; a row someone else holds is left alone."""
    await pool.execute(
        "DELETE FROM fal_submissions WHERE idempotency_key = $1 AND updated_at = $2"
        " AND state IN ('preparing', 'submitting')",
        key,
        lease,
    )
