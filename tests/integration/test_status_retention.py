"""The status service's pruning of `fal_webhooks` on a migrated PostgreSQL, as its own role:
applied rows older than the retention go, in batches; unapplied ones (work not done, an
orphan waiting for its trainer) and recent ones stay, however many old unapplied rows lie
in the way; the setting has a floor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.kit.config import ConfigError, Env
from services.kit.db import create_pool
from services.kit.schema import STATUS
from services.status.config import StatusConfig
from services.status.retention import WebhookRetention, retention_hours
from tests.botkit import eventually

HOURS = 72.0


@pytest.fixture
async def status_pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_url, STATUS, max_size=2)
    yield pool
    await pool.close()


async def webhook(
    pool: asyncpg.Pool, name: str, *, hours_ago: float, applied: bool, key: str | None = None
) -> int:
    """A stored delivery received `hours_ago` (applied an hour after it came, or not yet)."""
    row_id: int = await pool.fetchval(
        "INSERT INTO fal_webhooks (request_id, received_at, fal_timestamp, body, processed_at, "
        "idempotency_key) VALUES ($1, now() - make_interval(secs => $2 * 3600), 1, "
        """'{"status": "OK", "payload": {"images": [{"url": "https://fal.media/x.png"}]}}', """
        "CASE WHEN $3 THEN now() - make_interval(secs => ($2 - 1) * 3600) END, $4) RETURNING id",
        name, hours_ago, applied, key,
    )  # fmt: skip
    return row_id


async def names(pool: asyncpg.Pool) -> set[str]:
    return {r["request_id"] for r in await pool.fetch("SELECT request_id FROM fal_webhooks")}


async def empty(pool: asyncpg.Pool) -> bool:
    return not await names(pool)


async def test_applied_webhooks_past_the_retention_go_the_rest_stay(
    admin_pool: asyncpg.Pool, status_pool: asyncpg.Pool
) -> None:
    # in id order: old unapplied ones first (more than a batch), then old applied ones,
    # then ones inside the retention; a few old applied ones more past those
    for i in range(12):
        await webhook(admin_pool, f"stuck-{i}", hours_ago=200, applied=False, key=f"k{i}")
    for i in range(17):
        await webhook(admin_pool, f"old-{i}", hours_ago=100 - i, applied=True)
    await webhook(admin_pool, "just-past", hours_ago=HOURS + 0.1, applied=True)
    await webhook(admin_pool, "just-inside", hours_ago=HOURS - 0.1, applied=True)
    await webhook(admin_pool, "recent-unapplied", hours_ago=0, applied=False)
    await webhook(admin_pool, "recent", hours_ago=1, applied=True)
    kept = await names(admin_pool) - {f"old-{i}" for i in range(17)} - {"just-past"}

    retention = WebhookRetention(status_pool, retention_hours=HOURS, batch=5)
    assert await retention.prune_once() == 18
    assert await names(admin_pool) == kept
    assert await retention.prune_once() == 0  # nothing more to do, and nothing breaks
    assert await names(admin_pool) == kept


async def test_a_row_out_of_id_order_is_caught_on_a_later_run(
    admin_pool: asyncpg.Pool, status_pool: asyncpg.Pool
) -> None:
    """The walk stops at the first batch reaching a row inside the retention; an old row
    after it (ids and receive times disagree by a commit's width) waits for a later run,
    by which time what stopped the walk has aged past the retention too."""
    await webhook(admin_pool, "old", hours_ago=100, applied=True)
    await webhook(admin_pool, "inside", hours_ago=HOURS - 0.5, applied=True)
    await webhook(admin_pool, "late-old", hours_ago=100, applied=True)
    await webhook(admin_pool, "tail", hours_ago=0, applied=True)
    retention = WebhookRetention(status_pool, retention_hours=HOURS, batch=1)
    assert await retention.prune_once() == 1
    assert await names(admin_pool) == {"inside", "late-old", "tail"}
    await admin_pool.execute(
        "UPDATE fal_webhooks SET received_at = received_at - interval '1 hour' "
        "WHERE request_id = 'inside'"
    )
    assert await retention.prune_once() == 2
    assert await names(admin_pool) == {"tail"}


async def test_the_task_prunes_periodically_until_stopped(
    admin_pool: asyncpg.Pool, status_pool: asyncpg.Pool
) -> None:
    await webhook(admin_pool, "first", hours_ago=100, applied=True)
    stop = asyncio.Event()
    retention = WebhookRetention(status_pool, retention_hours=HOURS, interval=0.05)
    task = asyncio.create_task(retention.run(stop))
    try:
        await eventually(lambda: empty(admin_pool))
        await webhook(admin_pool, "second", hours_ago=100, applied=True)  # a later run's
        await eventually(lambda: empty(admin_pool))
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


def test_the_retention_setting_defaults_to_72_hours_and_has_a_floor() -> None:
    base = {"FAL_KEY": "id:secret", "DATABASE_URL": "postgresql://u:p@localhost/db"}
    assert StatusConfig.from_env(Env(base)).webhook_retention_hours == 72.0
    assert retention_hours(Env({"STATUS_WEBHOOK_RETENTION_HOURS": "24"})) == 24.0
    with pytest.raises(ConfigError, match="STATUS_WEBHOOK_RETENTION_HOURS"):
        StatusConfig.from_env(Env(base | {"STATUS_WEBHOOK_RETENTION_HOURS": "1"}))
    with pytest.raises(ConfigError, match="STATUS_WEBHOOK_RETENTION_HOURS"):
        retention_hours(Env({"STATUS_WEBHOOK_RETENTION_HOURS": "three days"}))
