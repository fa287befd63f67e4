"""The training side of the ledger: the `preparing` lease and the avatar's trainer columns.

A training's row is committed in `preparing` before the archive is built (minutes for a
large set of photos), so a delivery that died while preparing is simply taken over.
`updated_at` doubles as a lease: every move is a compare-and-set on it, so two deliveries
of one attempt can never both reach FAL. `preparing` → `submitting` is `begin_submit`;
the rest of the row's life is the shared ledger (`ledger.py`).
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

import asyncpg

from contracts import TrainingRequested
from services.kit import credits
from services.kit.db import UnitOfWork
from services.trainer import waiting_line
from services.trainer.ledger import charge
from services.trainer.presets import TrainingPlan

_RESERVE = """
INSERT INTO fal_submissions (kind, subject_id, attempt, idempotency_key, endpoint, state,
    updated_at)
VALUES ('training', $1, $2, $3, $4, 'preparing', clock_timestamp())
ON CONFLICT (idempotency_key) DO UPDATE SET updated_at = clock_timestamp()
    WHERE fal_submissions.state = 'preparing'
RETURNING updated_at, xmax = 0 AS inserted
"""

_AVATAR_SUBMITTED = """
UPDATE avatars SET fal_request_id = $2, fal_endpoint = $3,
    finetune_type = $4::fal_finetune_type, finetune_comment = $5,
    learning_rate = $6, steps = $7, lora_rank = $8, trigger_phrase = $9,
    multiresolution_training = $10, subject_crop = $11, create_masks = $12,
    captioning = $13, webhook_url = $14, images_data_url = $15,
    submitted_attempt = $16, submitted_at = now(), cost_usd = $17,
    lora_upload_url = NULL, lora_upload_expires_at = NULL
WHERE id = $1
"""


class Reservation(NamedTuple):
    """What `reserve` got: the lease (None when the attempt is past `preparing`, or waits
    for a slot: then `ahead` is its place in the line) and whether this call charged the
    quote, so the caller counts each charge once (a free job, or a takeover of an attempt
    charged before, is False)."""

    lease: datetime | None
    charged: bool
    ahead: int | None = None


async def reserve(
    pool: asyncpg.Pool, key: str, event: TrainingRequested, plan: TrainingPlan, slots: int
) -> Reservation:
    """Own the attempt in `preparing` (new, or taken over from a dead delivery): the lease.

    No lease when the attempt is past `preparing`; `ledger.existing` tells where it
    stands. The user's credits are charged in the same transaction (once per attempt,
    whoever takes it over); `credits.InsufficientCredits` means nothing was reserved.
    A new attempt is admitted only to one of `slots` free training slots with nobody
    waiting before it; otherwise it joins the line (`waiting_line.py`) and the user is
    told their place, all in this transaction.
    """
    charged = False
    async with UnitOfWork(pool, "trainer") as uow:
        row = await uow.conn.fetchrow(_RESERVE, event.avatar_id, event.attempt, key, plan.endpoint)
        if row is None:
            return Reservation(None, False)
        charged = await charge(
            uow.conn,
            user_id=event.user_id,
            kind=credits.Kind.TRAINING_CHARGE,
            amount=event.credits,
            key=credits.training_charge_key(event.avatar_id, event.attempt),
            subject=event.avatar_id,
        )
        if row["inserted"]:
            ahead = await waiting_line.admit(uow, key, event, slots)
            if ahead is not None:
                return Reservation(None, charged, ahead)
    return Reservation(row["updated_at"], charged)


async def accepted_photos(conn: asyncpg.Connection, avatar_id: str) -> int:
    """How many photos the archive held (an adopted job's archive died with its process)."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM photos WHERE avatar_id = $1 AND status = 'accepted'", avatar_id
    )
    return count


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
