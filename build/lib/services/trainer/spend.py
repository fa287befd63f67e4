"""The daily spend estimate: one query, so trainings and generations share one budget.

Both kinds record an estimated `cost_usd` with their `submitted_at` in their own rows; the
limit (`TRAINER_DAILY_SPEND_LIMIT_USD`) applies to the sum over the last 24 hours.
"""

from __future__ import annotations

import asyncpg

_SPENT_LAST_DAY = """
SELECT (SELECT coalesce(sum(cost_usd), 0) FROM avatars
        WHERE submitted_at > now() - interval '1 day')
     + (SELECT coalesce(sum(cost_usd), 0) FROM generations
        WHERE submitted_at > now() - interval '1 day')
"""


async def spent_last_day(db: asyncpg.Pool | asyncpg.Connection) -> float:
    """Estimated US dollars sent to FAL in the last 24 hours (trainings + generations)."""
    return float(await db.fetchval(_SPENT_LAST_DAY))
