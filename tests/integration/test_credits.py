"""The credit ledger against real PostgreSQL: derived balance, idempotency, never negative.

The concurrency tests run many transactions at once through a pool as the services' own
roles; the database (advisory lock + UNIQUE (user_id, seq) + CHECK balance_after >= 0)
must keep the balance exact whatever the interleaving. The trainer tests drive the real
`GenerationService`/`TrainingService` reservation with a counting stand-in for FAL (the
real FAL path is covered end to end in tests/e2e/test_credits_flow.py).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from contracts import (
    FailureReason,
    GenerationRequested,
    derived_event_id,
    utcnow,
)
from services.kit import credits
from services.kit.config import Env
from services.kit.consumer import Delivery
from services.kit.db import create_pool
from services.trainer.config import TrainerConfig
from services.trainer.fal_gateway import FalGateway
from services.trainer.generation_submission import GenerationService
from services.trainer.metrics import TrainerMetrics


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_url, "aisha_bot", max_size=20)
    yield pool
    await pool.close()


async def _post(pool: asyncpg.Pool, user_id: int, amount: int, key: str, **kw: Any) -> Any:
    async with pool.acquire() as conn, conn.transaction():
        return await credits.post(
            conn, user_id=user_id, kind=kw.pop("kind", credits.Kind.ADMIN_GRANT),
            amount=amount, key=key, **kw,
        )  # fmt: skip


def _user() -> int:
    return uuid.uuid4().int % 10**9 + 10**9


async def test_balance_is_the_sum_of_entries_and_keys_are_idempotent(pool: asyncpg.Pool) -> None:
    user = _user()
    assert await credits.balance(pool, user) == 0
    first = await _post(pool, user, 30, "grant:a")
    again = await _post(pool, user, 30, "grant:a")
    assert not first.duplicate
    assert again.duplicate
    assert again.entry == first.entry
    await _post(pool, user, -12, "charge:x", kind=credits.Kind.GENERATION_CHARGE)
    assert await credits.balance(pool, user) == 18
    history = await credits.history(pool, user)
    assert [e.amount for e in history] == [-12, 30]
    assert [e.seq for e in history] == [2, 1]
    assert sum(e.amount for e in history) == history[0].balance_after


async def test_debit_beyond_the_balance_writes_nothing(pool: asyncpg.Pool) -> None:
    user = _user()
    await _post(pool, user, 5, "grant:b")
    with pytest.raises(credits.InsufficientCredits) as caught:
        await _post(pool, user, -6, "charge:too-much", kind=credits.Kind.TRAINING_CHARGE)
    assert (caught.value.balance, caught.value.needed) == (5, 6)
    assert await credits.entry(pool, "charge:too-much") is None
    assert await credits.balance(pool, user) == 5


async def test_post_refuses_zero_and_a_missing_transaction(pool: asyncpg.Pool) -> None:
    with pytest.raises(ValueError, match="at least one credit"):
        await _post(pool, _user(), 0, "zero")
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="transaction"):
            await credits.post(
                conn, user_id=_user(), kind=credits.Kind.TRIAL, amount=1, key="no-tx"
            )


async def test_fifty_concurrent_debits_on_ten_credits_take_exactly_ten(pool: asyncpg.Pool) -> None:
    user = _user()
    await _post(pool, user, 10, "grant:c")

    async def spend(i: int) -> bool:
        try:
            await _post(pool, user, -1, f"charge:c{i}", kind=credits.Kind.GENERATION_CHARGE)
        except credits.InsufficientCredits:
            return False
        return True

    results = await asyncio.gather(*(spend(i) for i in range(50)))
    assert sum(results) == 10
    assert await credits.balance(pool, user) == 0
    entries = await credits.history(pool, user, limit=100)
    assert sorted(e.seq for e in entries) == list(range(1, 12))
    assert sum(e.amount for e in entries) == 0


async def test_concurrent_repeats_of_one_key_post_once(pool: asyncpg.Pool) -> None:
    user = _user()
    postings = await asyncio.gather(*(_post(pool, user, 7, "purchase:same") for _ in range(20)))
    assert sum(not p.duplicate for p in postings) == 1
    assert await credits.balance(pool, user) == 7


async def test_the_database_itself_refuses_overdraft_and_forked_history(db_url: str) -> None:
    """Even a writer that skips `post` (and its lock) cannot go negative or fork seq."""
    user = _user()
    conn = await asyncpg.connect(db_url)
    try:
        insert = (
            "INSERT INTO credit_entries (user_id, seq, kind, amount, balance_after,"
            " idempotency_key) VALUES ($1, $2, 'admin_grant', $3, $4, $5)"
        )
        await conn.execute(insert, user, 1, 3, 3, f"k1-{user}")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(insert, user, 2, -4, -1, f"k2-{user}")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, user, 1, 1, 4, f"k3-{user}")
    finally:
        await conn.close()


async def test_roles_cannot_rewrite_history(db_url: str, pool: asyncpg.Pool) -> None:
    user = _user()
    await _post(pool, user, 4, "grant:d")
    for role in ("aisha_bot", "aisha_trainer", "aisha_status"):
        role_pool = await create_pool(db_url, role, max_size=1)
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await role_pool.execute(
                    "UPDATE credit_entries SET amount = 400 WHERE user_id = $1", user
                )
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await role_pool.execute("DELETE FROM credit_entries WHERE user_id = $1", user)
        finally:
            await role_pool.close()


async def test_refund_gives_back_the_charge_once(pool: asyncpg.Pool) -> None:
    user = _user()
    await _post(pool, user, 10, "grant:e")
    key = credits.generation_charge_key(str(uuid.uuid4()))
    await _post(pool, user, -4, key, kind=credits.Kind.GENERATION_CHARGE)
    async with pool.acquire() as conn, conn.transaction():
        first = await credits.refund(conn, charge_key=key, reason="fal_error")
        second = await credits.refund(conn, charge_key=key, reason="fal_error")
        nothing = await credits.refund(conn, charge_key="charge:none", reason="fal_error")
    assert first is not None
    assert not first.duplicate
    assert first.entry.amount == 4
    assert second is not None
    assert second.duplicate
    assert nothing is None
    assert await credits.balance(pool, user) == 10


# -- the trainer charges in its reservation ------------------------------------------------


class CountingFal(FalGateway):
    """Stands in for FAL: counts submissions and accepts each with a fresh request id."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    async def submit(
        self, endpoint: str, arguments: dict[str, Any], webhook_url: str, **_: Any
    ) -> str:
        await asyncio.sleep(0.005)
        self.submitted.append(webhook_url)
        return f"req-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def trainer(db_url: str) -> AsyncIterator[tuple[GenerationService, CountingFal]]:
    env = {
        "DATABASE_URL": db_url,
        "FAL_KEY": "key-id:key-secret",
        "PUBLIC_BASE_URL": "https://aisha.example",
    }
    pool = await create_pool(db_url, "aisha_trainer", max_size=20)
    fal = CountingFal()
    config = TrainerConfig.from_env(Env(env))
    yield GenerationService(pool=pool, fal=fal, config=config, metrics=TrainerMetrics()), fal
    await pool.close()


async def _generation(db_url: str, user: int, credits_quoted: int) -> GenerationRequested:
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute(
            "INSERT INTO users (id, first_name) VALUES ($1, 'C') ON CONFLICT DO NOTHING", user
        )
        generation_id = await conn.fetchval(
            "INSERT INTO generations (user_id, prompt, aspect_ratio, num_images, seed)"
            " VALUES ($1, 'a lighthouse', '1:1', 1, 5) RETURNING id::text",
            user,
        )
    finally:
        await conn.close()
    return GenerationRequested(
        event_id=derived_event_id("generation_requested", generation_id),
        occurred_at=utcnow(),
        generation_id=generation_id,
        user_id=user,
        avatar_id=None,
        prompt="a lighthouse",
        aspect_ratio="1:1",
        num_images=1,
        seed=5,
        credits=credits_quoted,
    )


async def test_fifty_generations_on_ten_credits_submit_exactly_ten(
    trainer: tuple[GenerationService, CountingFal], pool: asyncpg.Pool, db_url: str
) -> None:
    service, fal = trainer
    user = _user()
    await _post(pool, user, 10, "grant:f")
    requests = [await _generation(db_url, user, 1) for _ in range(50)]
    once = Delivery(number=1, max_deliver=5)
    await asyncio.gather(*(service.on_requested(r, once) for r in requests))
    assert len(fal.submitted) == 10
    assert await credits.balance(pool, user) == 0
    failed = await pool.fetch(
        "SELECT payload FROM outbox WHERE subject = 'aisha.generation.failed'"
        " AND convert_from(payload, 'UTF8')::jsonb ->> 'user_id' = $1::text",
        str(user),
    )
    assert len(failed) == 40
    assert all(
        FailureReason.INSUFFICIENT_CREDITS.value in bytes(r["payload"]).decode() for r in failed
    )
    # Redelivered requests neither submit nor charge again, nor report the refusal twice.
    await asyncio.gather(*(service.on_requested(r, Delivery(2, 5)) for r in requests))
    assert len(fal.submitted) == 10
    assert await credits.balance(pool, user) == 0
    charges = await pool.fetchval(
        "SELECT count(*) FROM credit_entries WHERE user_id = $1 AND kind = 'generation_charge'",
        user,
    )
    assert charges == 10
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM outbox WHERE subject = 'aisha.generation.failed'"
            " AND convert_from(payload, 'UTF8')::jsonb ->> 'user_id' = $1::text",
            str(user),
        )
        == 40
    )


async def test_a_free_request_charges_nothing(
    trainer: tuple[GenerationService, CountingFal], pool: asyncpg.Pool, db_url: str
) -> None:
    service, fal = trainer
    user = _user()
    await service.on_requested(await _generation(db_url, user, 0), Delivery(1, 5))
    assert len(fal.submitted) == 1
    assert await credits.history(pool, user) == []
