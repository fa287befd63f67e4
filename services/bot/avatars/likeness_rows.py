"""The reference identity's SQL (`avatars.likeness_*`, bot-owned, migration 0013).

Computed when the training is requested, in its transaction: the photos are final then
(the set cannot change while the avatar trains) and a retrain with other photos recomputes
it. Erased with the avatar row, so with the avatar's deletion and `/delete_me`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from services.bot.avatars.likeness import WEAK, Identity, identity_of


async def store_identity(conn: Any, avatar_id: UUID) -> Identity | None:
    """From the accepted photos' embeddings (a style avatar's have none: stays NULL)."""
    rows = await conn.fetch(
        "SELECT embedding FROM photos WHERE avatar_id = $1 AND embedding IS NOT NULL",
        avatar_id,
    )
    identity = identity_of([r["embedding"] for r in rows])
    await conn.execute(
        "UPDATE avatars SET likeness_center = $2, likeness_spread = $3, likeness_faces = $4 "
        "WHERE id = $1",
        avatar_id,
        None if identity is None else list(identity.center),
        None if identity is None else identity.spread,
        None if identity is None else identity.faces,
    )
    return identity


async def identity(pool: asyncpg.Pool | asyncpg.Connection, avatar_id: UUID) -> Identity | None:
    row = await pool.fetchrow(
        "SELECT likeness_center, likeness_spread, likeness_faces FROM avatars "
        "WHERE id = $1 AND training_type = 'portrait'",
        avatar_id,
    )
    if row is None or row["likeness_center"] is None:
        return None
    return Identity(tuple(row["likeness_center"]), row["likeness_spread"], row["likeness_faces"])


@dataclass(frozen=True)
class LikenessStats:
    """For the admin's /stats: the last `days` of delivered pictures."""

    scored: int
    median: float | None
    low: int
    retries: int


async def stats(pool: asyncpg.Pool, days: int = 30) -> LikenessStats:
    row = await pool.fetchrow(
        "SELECT count(likeness) AS scored, "
        "percentile_cont(0.5) WITHIN GROUP (ORDER BY likeness) AS median, "
        "count(*) FILTER (WHERE likeness < $2) AS low, "
        "(SELECT count(*) FROM generations WHERE likeness_retry "
        " AND created_at > now() - make_interval(days => $1)) AS retries "
        "FROM generated_images WHERE created_at > now() - make_interval(days => $1)",
        days,
        WEAK,
    )
    return LikenessStats(row["scored"], row["median"], row["low"], row["retries"])
