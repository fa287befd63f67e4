"""Rows the scenarios start from: users and avatars whose training FAL is running.

Written in bulk as the admin role (one statement per table), in the state the trainer and
the status service leave them after a submission: `training`, attempt 1 submitted and
tracked, a FAL request id. `due` makes the poller claim them at once; without it they are
never polled (only a webhook finishes them).
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from benchmarks.falhooks import TRAINER_APP

_user_ids = itertools.count(random.randrange(10**9, 2 * 10**9) * 100)

_USERS = """
INSERT INTO users (id, first_name, language)
SELECT u, 'Bench', 'en' FROM unnest($1::bigint[]) AS u ON CONFLICT (id) DO NOTHING
"""
_AVATARS = """
INSERT INTO avatars (id, user_id, name, gender, status, training_type, trigger_word,
    training_attempt, fal_request_id, fal_endpoint, submitted_attempt, submitted_at,
    tracked_attempt, fal_status, next_poll_at, progress_chat_id, progress_message_id)
SELECT a, u, 'Bench', 'female', 'training', 'style', 'ohwxbench', 1, r, $4, 1, now(), 1,
    'IN_QUEUE', CASE WHEN $5 THEN now() END, c, m
FROM unnest($1::uuid[], $2::bigint[], $3::text[], $6::bigint[], $7::bigint[]) AS t(a, u, r, c, m)
"""


@dataclass(frozen=True)
class Training:
    avatar_id: uuid.UUID
    user_id: int
    request_id: str


def new_user_ids(count: int) -> list[int]:
    """Ids no earlier seeding used (Telegram user id = private chat id)."""
    return [next(_user_ids) for _ in range(count)]


async def trainings(
    pool: asyncpg.Pool,
    user_ids: Sequence[int],
    *,
    due: bool = False,
    messages: Sequence[int | None] | None = None,
    request_ids: Sequence[str] | None = None,
) -> list[Training]:
    """One running training per user; `messages[i]` is its progress message (chat = user)."""
    made = [
        Training(uuid.uuid4(), uid, request_ids[i] if request_ids else str(uuid.uuid4()))
        for i, uid in enumerate(user_ids)
    ]
    message_ids = list(messages) if messages is not None else [None] * len(made)
    chats = [t.user_id if m is not None else None for t, m in zip(made, message_ids, strict=True)]
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(_USERS, list(user_ids))
        for start in range(0, len(made), 5000):
            part = slice(start, start + 5000)
            await conn.execute(
                _AVATARS,
                [t.avatar_id for t in made[part]],
                [t.user_id for t in made[part]],
                [t.request_id for t in made[part]],
                TRAINER_APP,
                due,
                chats[part],
                message_ids[part],
            )
    return made


async def finish_all(pool: asyncpg.Pool, made: Sequence[Training]) -> None:
    """Take seeded trainings out of the poller's way once a scenario is done with them."""
    await pool.execute(
        "UPDATE avatars SET training_finished_at = now(), fal_status = 'COMPLETED'"
        " WHERE id = ANY($1::uuid[]) AND training_finished_at IS NULL",
        [t.avatar_id for t in made],
    )
