"""Orphans: jobs FAL accepted just before the submitting process died (any kind of job).

The ledger row is left in `submitting`; submitting again could pay twice, and FAL cannot
be asked "which job has this key?" (its queue API looks jobs up by request id only). The
witness is the job's webhook: our webhook URL carries `?key=<idempotency key>`, and the
status service stores every webhook with its key and keeps an unknown one unapplied
(`services/status/webhooks.py`). A redelivered request looks its key up here and adopts
the request id as if the submit had answered (`submission.py`).
"""

from __future__ import annotations

import asyncpg


async def orphan_request_id(pool: asyncpg.Pool, key: str) -> str | None:
    """The request id of the first genuine webhook that came back with our key, if any.

    A request id another submission already owns is skipped: the key in the URL is not
    covered by FAL's signature, so it is a hint to check, never proof on its own.
    """
    value = await pool.fetchval(
        "SELECT w.request_id FROM fal_webhooks w WHERE w.idempotency_key = $1"
        " AND NOT EXISTS (SELECT 1 FROM fal_submissions s WHERE s.request_id = w.request_id)"
        " ORDER BY w.received_at LIMIT 1",
        key,
    )
    return None if value is None else str(value)


async def claim_orphan(conn: asyncpg.Connection, key: str, request_id: str) -> bool:
    """`submitting` → `submitted` with the orphan's request id, inside the caller's
    transaction; False when the row moved on (cancelled, failed, adopted by another)."""
    claimed = await conn.fetchval(
        "UPDATE fal_submissions SET state = 'submitted', request_id = $2,"
        " submitted_at = now(), updated_at = clock_timestamp()"
        " WHERE idempotency_key = $1 AND state = 'submitting' RETURNING 1",
        key,
        request_id,
    )
    return claimed is not None
