"""The training ledger (`fal_submissions`): one FAL job per attempt, whoever crashes when.

A row per idempotency key moves `preparing` → `submitting` → `submitted` (or `failed`,
`cancelled`). `updated_at` doubles as a lease: every move is a compare-and-set on it, so
two deliveries of one attempt can never both reach FAL.

* `preparing` — the archive is being built and uploaded; FAL has not been called. A
  delivery that finds the row here (its predecessor died) takes it over and goes on.
* `submitting` — committed just before the submit call. A delivery that finds the row here
  cannot know whether FAL accepted the job — an orphan — and must not submit again.
* `submitted` — FAL's request id is recorded with the avatar's columns and the event.

An orphan is resolved by its webhook (`orphans.py`): the redelivered request adopts the
request id it names exactly as if the submit had answered — ledger, avatar columns (same
deterministic plan) and `training.submitted` in one transaction — and the status service
then applies the stored webhook.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import NamedTuple

import asyncpg

from contracts import Event, TrainingRequested, TrainingSubmitted
from services.kit import credits
from services.kit.db import UnitOfWork
from services.trainer.orphans import claim_orphan, orphan_request_id

__all__ = [
    "Reservation",
    "adopt",
    "begin_submit",
    "charge",
    "existing",
    "orphan_request_id",
    "refuse_unpaid",
    "release",
    "reserve",
]
from services.trainer.presets import TrainingPlan

log = logging.getLogger(__name__)

_RESERVE = """
INSERT INTO fal_submissions (kind, subject_id, attempt, idempotency_key, endpoint, state,
    updated_at)
VALUES ('training', $1, $2, $3, $4, 'preparing', clock_timestamp())
ON CONFLICT (idempotency_key) DO UPDATE SET updated_at = clock_timestamp()
    WHERE fal_submissions.state = 'preparing'
RETURNING updated_at
"""

_AVATAR_SUBMITTED = """
UPDATE avatars SET fal_request_id = $2, fal_endpoint = $3,
    finetune_type = $4::fal_finetune_type, finetune_comment = $5,
    learning_rate = $6, steps = $7, lora_rank = $8, trigger_phrase = $9,
    multiresolution_training = $10, subject_crop = $11, create_masks = $12,
    captioning = $13, webhook_url = $14, images_data_url = $15,
    submitted_attempt = $16, submitted_at = now(), cost_usd = $17
WHERE id = $1
"""


class Reservation(NamedTuple):
    """What `reserve` got: the lease (None when the attempt is past `preparing`) and
    whether this call charged the quote, so the caller counts each charge once (a free
    job, or a takeover of an attempt charged before, is False)."""

    lease: datetime | None
    charged: bool


async def reserve(
    pool: asyncpg.Pool, key: str, event: TrainingRequested, plan: TrainingPlan
) -> Reservation:
    """Own the attempt in `preparing` (new, or taken over from a dead delivery): the lease.

    No lease when the attempt is past `preparing`; `existing` tells where it stands. The
    user's credits are charged in the same transaction (once per attempt, whoever takes
    it over); `credits.InsufficientCredits` means nothing was reserved.
    """
    charged = False
    async with pool.acquire() as conn, conn.transaction():
        lease: datetime | None = await conn.fetchval(
            _RESERVE, event.avatar_id, event.attempt, key, plan.endpoint
        )
        if lease is not None:
            charged = await charge(
                conn,
                user_id=event.user_id,
                kind=credits.Kind.TRAINING_CHARGE,
                amount=event.credits,
                key=credits.training_charge_key(event.avatar_id, event.attempt),
                subject=event.avatar_id,
            )
    return Reservation(lease, charged)


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


async def write_avatar_submission(
    conn: asyncpg.Connection,
    event: TrainingRequested,
    plan: TrainingPlan,
    *,
    request_id: str,
    webhook: str,
    images_url: str | None,
    comment: str,
    cost: float,
) -> None:
    """What was sent to FAL, in the avatar's trainer-owned columns."""
    await conn.execute(
        _AVATAR_SUBMITTED,
        event.avatar_id,
        request_id,
        plan.endpoint,
        plan.finetune_type,
        comment,
        plan.learning_rate,
        plan.steps,
        plan.lora_rank,
        plan.trigger_phrase,
        plan.multiresolution_training,
        plan.subject_crop,
        plan.create_masks,
        plan.captioning,
        webhook,
        images_url,
        event.attempt,
        cost,
    )


async def adopt(
    pool: asyncpg.Pool,
    event: TrainingRequested,
    plan: TrainingPlan,
    submitted: TrainingSubmitted,
    key: str,
    webhook: str,
    cost: float,
) -> bool:
    """Ledger, avatar columns and `training.submitted` for the orphan, in one transaction;
    False when the row had moved on (cancelled, or another delivery got there first)."""
    photos = await pool.fetchval(
        "SELECT count(*) FROM photos WHERE avatar_id = $1 AND status = 'accepted'",
        event.avatar_id,
    )
    async with UnitOfWork(pool, "trainer") as uow:
        if not await claim_orphan(uow.conn, key, submitted.request_id):
            return False
        await write_avatar_submission(
            uow.conn,
            event,
            plan,
            request_id=submitted.request_id,
            webhook=webhook,
            images_url=None,  # the archive's URL died with the process that uploaded it
            comment=f"{plan.finetune_comment}, {photos} photos, adopted after a crash",
            cost=cost,
        )
        uow.publish(submitted)
    log.warning(
        "adopted orphan training job",
        extra={"avatar_id": event.avatar_id, "request_id": submitted.request_id},
    )
    return True
