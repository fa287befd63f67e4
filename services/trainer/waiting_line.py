"""Our own line for training slots: a request above the limit waits, and is never failed
for waiting.

`TRAINER_MAX_CONCURRENT` is our spend/fairness limit, not FAL's (FAL queues above its
account limit itself and never rejects, `docs/decisions.md`). A new training that finds
every slot taken, or anyone already waiting, becomes a ledger row in `waiting` holding its
request (`admit`, in the transaction that reserves and charges it), and the user is told
how many wait before it (`TrainingWaiting`). `WaitingLine` releases the oldest waiting
rows as slots free up: each goes back to `preparing` and its request is republished (with
a new event id), so the ordinary submission step takes it from there, with its retries.
Admission and release take one advisory lock, so two replicas never fill one slot twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg
import msgspec

from contracts import TrainingRequested, TrainingWaiting, derived_event_id, utcnow
from contracts.base import encode
from services.kit.db import DB_ERRORS, UnitOfWork
from services.kit.waiting import pause

log = logging.getLogger(__name__)

#: `pg_advisory_xact_lock` key shared by admission and release ("aisha slots").
_SLOTS_LOCK = 0x41697368_5A01
#: Busy slots: trainings running at FAL, being submitted, or being prepared — a `preparing`
#: lease untouched for 10 minutes is a dead delivery's (a live one renews it at every
#: redelivery), so it cannot hold a slot for good.
_COUNT = """
SELECT (SELECT count(*) FROM fal_submissions WHERE kind = 'training'
            AND (state = 'submitting' OR state = 'preparing'
                 AND updated_at > clock_timestamp() - interval '10 minutes')
            AND idempotency_key <> $1)
     + (SELECT count(*) FROM fal_submissions s JOIN avatars a ON a.id = s.subject_id
            WHERE s.kind = 'training' AND s.state = 'submitted'
              AND a.training_finished_at IS NULL) AS busy,
       (SELECT count(*) FROM fal_submissions
            WHERE kind = 'training' AND state = 'waiting')::int AS waiting
"""
_WAIT = """
UPDATE fal_submissions SET state = 'waiting', waiting_since = clock_timestamp(), ahead = $2,
    request = $3, updated_at = clock_timestamp()
WHERE idempotency_key = $1
"""
_RELEASE = """
WITH next AS (
    SELECT id, request FROM fal_submissions WHERE kind = 'training' AND state = 'waiting'
    ORDER BY waiting_since, id LIMIT $1 FOR UPDATE
)
UPDATE fal_submissions f SET state = 'preparing', updated_at = clock_timestamp(),
    ahead = NULL, request = NULL
FROM next WHERE f.id = next.id
RETURNING f.idempotency_key, next.request, f.waiting_since
"""
_PLACES = """
WITH line AS (
    SELECT id, (row_number() OVER (ORDER BY waiting_since, id) - 1)::int AS place
    FROM fal_submissions WHERE kind = 'training' AND state = 'waiting'
)
UPDATE fal_submissions f SET ahead = line.place FROM line
WHERE f.id = line.id AND f.ahead IS DISTINCT FROM line.place
RETURNING f.request, f.ahead
"""


def _waiting(event: TrainingRequested, ahead: int) -> TrainingWaiting:
    return TrainingWaiting(
        event_id=derived_event_id("training.waiting", event.avatar_id, event.attempt, ahead),
        occurred_at=utcnow(),
        avatar_id=event.avatar_id,
        user_id=event.user_id,
        attempt=event.attempt,
        ahead=ahead,
    )


async def admit(uow: UnitOfWork, key: str, event: TrainingRequested, slots: int) -> int | None:
    """None when the new attempt `key` may go on now; else it waits, and the number of
    requests waiting before it is returned (and told to the user)."""
    await uow.conn.execute("SELECT pg_advisory_xact_lock($1)", _SLOTS_LOCK)
    count = await uow.conn.fetchrow(_COUNT, key)
    if count["busy"] < slots and count["waiting"] == 0:
        return None
    ahead: int = count["waiting"]
    await uow.conn.execute(_WAIT, key, ahead, encode(event))
    uow.publish(_waiting(event, ahead))
    log.info("training waits for a slot, %d ahead", ahead, extra={"avatar_id": event.avatar_id})
    return ahead


@dataclass
class WaitingLine:
    """Releases waiting trainings into free slots, and tells the rest their new place."""

    pool: asyncpg.Pool
    slots: int
    interval: float = 2.0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.release_once()
            except DB_ERRORS as exc:  # a database restart must not end the line for good
                log.warning("waiting line step failed: %s", exc)
            await pause(stop, self.interval)

    async def release_once(self) -> int:
        """One step: release what fits in the free slots, oldest first; returns how many."""
        async with UnitOfWork(self.pool, "trainer") as uow:
            await uow.conn.execute("SELECT pg_advisory_xact_lock($1)", _SLOTS_LOCK)
            count = await uow.conn.fetchrow(_COUNT, "")
            free = self.slots - count["busy"]
            released = await uow.conn.fetch(_RELEASE, max(0, free)) if free > 0 else []
            for row in released:
                event = msgspec.json.decode(row["request"], type=TrainingRequested)
                uow.publish(
                    msgspec.structs.replace(
                        event,
                        event_id=derived_event_id(
                            "training.released", row["idempotency_key"], row["waiting_since"]
                        ),
                    )
                )
            for row in await uow.conn.fetch(_PLACES):
                event = msgspec.json.decode(row["request"], type=TrainingRequested)
                uow.publish(_waiting(event, row["ahead"]))
        if released:
            log.info("released %d waiting trainings into free slots", len(released))
        return len(released)
