"""One writer per column, enforced by PostgreSQL: every role × every column × UPDATE/INSERT/DELETE.

Each check runs as the role (`SET LOCAL ROLE` in a transaction that is always rolled back)
against a seeded row per table, and compares what actually succeeded with
`services.kit.schema.OWNERS` / `INSERTERS` / `DELETERS`.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from services.kit import schema

TABLES = sorted(schema.metadata.tables)
USER_ID = 1001


class _Rollback(Exception):
    """Raised to roll back a statement that succeeded."""


@dataclass(frozen=True)
class Seed:
    avatar_id: uuid.UUID
    photo_id: uuid.UUID
    submission_id: uuid.UUID
    generation_id: uuid.UUID
    image_id: uuid.UUID
    outbox_id: uuid.UUID
    event_id: uuid.UUID
    webhook_id: int
    share_token: str
    credit_entry_id: int

    def key(self, table: str) -> tuple[str, tuple[object, ...]]:
        """WHERE clause and arguments selecting the seeded row of `table`."""
        by_id: dict[str, object] = {
            "users": USER_ID,
            "avatars": self.avatar_id,
            "photos": self.photo_id,
            "fal_submissions": self.submission_id,
            "generations": self.generation_id,
            "generated_images": self.image_id,
            "outbox": self.outbox_id,
            "fal_webhooks": self.webhook_id,
            "credit_entries": self.credit_entry_id,
        }
        if table == "share_links":
            return "token = $1", (self.share_token,)
        if table == "reference_photos":
            return "object_name = $1", ("references/1/1.jpg",)
        if table == "training_checks":
            return "avatar_id = $1 AND attempt = 1", (self.avatar_id,)
        if table == "star_payments":
            return "telegram_payment_charge_id = $1", ("stx-1",)
        if table == "promo_codes":
            return "code = $1", ("WELCOME",)
        if table == "promo_redemptions":
            return "code = $1 AND user_id = $2", ("WELCOME", USER_ID)
        if table == "processed_events":
            return "consumer = $1 AND event_id = $2", ("bot.test", self.event_id)
        return "id = $1", (by_id[table],)

    def new_row(self, table: str) -> tuple[str, tuple[object, ...]]:
        """An INSERT of a fresh valid row into `table`."""
        fresh = uuid.uuid4()
        return {
            "users": ("INSERT INTO users (id, first_name) VALUES ($1, 'New')", (USER_ID + 1,)),
            "avatars": (
                "INSERT INTO avatars (user_id, name, gender, trigger_word) "
                "VALUES ($1, 'Second', 'male', 'tok2')",
                (USER_ID,),
            ),
            "photos": (
                "INSERT INTO photos (avatar_id, user_id, object_name, sha256, status) "
                "VALUES ($1, $2, 'p/2', $3, 'rejected')",
                (self.avatar_id, USER_ID, fresh.hex),
            ),
            "fal_submissions": (
                "INSERT INTO fal_submissions "
                "(kind, subject_id, attempt, idempotency_key, endpoint, state) "
                "VALUES ('generation', $1, 1, $2, 'fal-ai/flux-lora', 'submitting')",
                (self.generation_id, str(fresh)),
            ),
            "generations": (
                "INSERT INTO generations "
                "(user_id, avatar_id, prompt, aspect_ratio, num_images, seed) "
                "VALUES ($1, $2, 'tok a photo', '1:1', 4, 7)",
                (USER_ID, self.avatar_id),
            ),
            "generated_images": (
                "INSERT INTO generated_images (generation_id, user_id, position, object_name) "
                "VALUES ($1, $2, 1, 'g/1')",
                (self.generation_id, USER_ID),
            ),
            "outbox": (
                "INSERT INTO outbox (id, producer, subject, payload) "
                "VALUES ($1, 'trainer', 'aisha.test', '\\x7b7d')",
                (fresh,),
            ),
            "processed_events": (
                "INSERT INTO processed_events (consumer, event_id) VALUES ('status.test', $1)",
                (fresh,),
            ),
            "fal_webhooks": (
                "INSERT INTO fal_webhooks (request_id, body) VALUES ('req-2', '{}'::jsonb)",
                (),
            ),
            "share_links": (
                "INSERT INTO share_links (token, image_id, user_id) VALUES ($1, $2, $3)",
                (fresh.hex, self.image_id, USER_ID),
            ),
            "reference_photos": (
                "INSERT INTO reference_photos (user_id, avatar_id, object_name, sha256,"
                " size_bytes, width, height) VALUES ($1, $2, $3, 'abc', 10, 64, 64)",
                (USER_ID, self.avatar_id, fresh.hex),
            ),
            "training_checks": (
                "INSERT INTO training_checks (avatar_id, attempt, user_id, paid_attempt, state) "
                "VALUES ($1, 2, $2, 2, 'checking')",
                (self.avatar_id, USER_ID),
            ),
            "credit_entries": (
                "INSERT INTO credit_entries (user_id, seq, kind, amount, balance_after, "
                "idempotency_key) VALUES ($1, 2, 'admin_grant', 5, 15, $2)",
                (USER_ID, fresh.hex),
            ),
            "star_payments": (
                "INSERT INTO star_payments (telegram_payment_charge_id, user_id, package_id, "
                "stars, credits, invoice_payload) VALUES ($1, $2, 'avatar', 250, 50, 'p')",
                (fresh.hex, USER_ID),
            ),
            "promo_codes": (
                "INSERT INTO promo_codes (code, credits, max_uses, expires_at, created_by) "
                "VALUES ($1, 5, 3, now() + interval '1 day', $2)",
                (fresh.hex, USER_ID),
            ),
            "promo_redemptions": (
                "INSERT INTO promo_redemptions (code, user_id) VALUES ('WELCOME', $1)",
                (USER_ID + 1,),
            ),
        }[table]


async def seed_rows(conn: asyncpg.Connection) -> Seed:
    """One row in every table, written as the superuser."""
    await conn.execute("INSERT INTO users (id, first_name) VALUES ($1, 'Aisha')", USER_ID)
    avatar_id = await conn.fetchval(
        "INSERT INTO avatars (user_id, name, gender, trigger_word, fal_request_id) "
        "VALUES ($1, 'Me', 'female', 'tok', 'req-1') RETURNING id",
        USER_ID,
    )
    await conn.execute("UPDATE users SET main_avatar_id = $1 WHERE id = $2", avatar_id, USER_ID)
    photo_id = await conn.fetchval(
        "INSERT INTO photos (avatar_id, user_id, object_name, sha256, status) "
        "VALUES ($1, $2, 'p/1', 'abc', 'accepted') RETURNING id",
        avatar_id,
        USER_ID,
    )
    submission_id = await conn.fetchval(
        "INSERT INTO fal_submissions (kind, subject_id, attempt, idempotency_key, endpoint, state) "
        "VALUES ('training', $1, 1, 'training/1', 'fal-ai/flux-lora-portrait-trainer', "
        "'submitted') RETURNING id",
        avatar_id,
    )
    generation_id = await conn.fetchval(
        "INSERT INTO generations (user_id, avatar_id, prompt, aspect_ratio, num_images, seed) "
        "VALUES ($1, $2, 'tok portrait', '3:4', 2, 42) RETURNING id",
        USER_ID,
        avatar_id,
    )
    image_id = await conn.fetchval(
        "INSERT INTO generated_images (generation_id, user_id, position, object_name) "
        "VALUES ($1, $2, 0, 'g/0') RETURNING id",
        generation_id,
        USER_ID,
    )
    outbox_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO outbox (id, producer, subject, payload) VALUES ($1, 'bot', 'aisha.x', 'x')",
        outbox_id,
    )
    event_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO processed_events (consumer, event_id) VALUES ('bot.test', $1)", event_id
    )
    webhook_id = await conn.fetchval(
        "INSERT INTO fal_webhooks (request_id, body) VALUES ('req-1', '{}'::jsonb) RETURNING id"
    )
    await conn.execute(
        "INSERT INTO share_links (token, image_id, user_id) VALUES ('tok-1', $1, $2)",
        image_id,
        USER_ID,
    )
    await conn.execute(
        "INSERT INTO reference_photos (user_id, avatar_id, object_name, sha256, size_bytes,"
        " width, height) VALUES ($1, $2, 'references/1/1.jpg', 'abc', 10, 64, 64)",
        USER_ID,
        avatar_id,
    )
    await conn.execute(
        "INSERT INTO training_checks (avatar_id, attempt, user_id, generation_id, paid_attempt,"
        " state) VALUES ($1, 1, $2, $3, 1, 'checking')",
        avatar_id,
        USER_ID,
        generation_id,
    )
    credit_entry_id = await conn.fetchval(
        "INSERT INTO credit_entries (user_id, seq, kind, amount, balance_after, idempotency_key)"
        " VALUES ($1, 1, 'trial', 10, 10, 'trial:1001') RETURNING id",
        USER_ID,
    )
    await conn.execute(
        "INSERT INTO star_payments (telegram_payment_charge_id, user_id, package_id, stars,"
        " credits, invoice_payload) VALUES ('stx-1', $1, 'avatar', 250, 50, 'p')",
        USER_ID,
    )
    await conn.execute(
        "INSERT INTO promo_codes (code, credits, max_uses, expires_at, created_by)"
        " VALUES ('WELCOME', 5, 3, now() + interval '1 day', $1)",
        USER_ID,
    )
    await conn.execute(
        "INSERT INTO promo_redemptions (code, user_id) VALUES ('WELCOME', $1)", USER_ID
    )
    return Seed(
        avatar_id,
        photo_id,
        submission_id,
        generation_id,
        image_id,
        outbox_id,
        event_id,
        webhook_id,
        "tok-1",
        credit_entry_id,
    )


async def allowed(conn: asyncpg.Connection, role: str, sql: str, *args: object) -> bool:
    """Whether `role` may run `sql` (which must touch exactly one row); always rolled back."""
    try:
        async with conn.transaction():
            await conn.execute(f"SET LOCAL ROLE {role}")
            status = await conn.execute(sql, *args)
            assert status.endswith(" 1"), (sql, status)
            raise _Rollback
    except _Rollback:
        return True
    except asyncpg.InsufficientPrivilegeError:
        return False
    finally:
        assert await conn.fetchval("SELECT current_user") == "postgres"


@pytest.fixture
async def seeded(db_url: str) -> AsyncIterator[tuple[asyncpg.Connection, Seed]]:
    conn = await asyncpg.connect(db_url)
    try:
        yield conn, await seed_rows(conn)
    finally:
        await conn.close()


async def columns_of(conn: asyncpg.Connection, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
        table,
    )
    return [row["column_name"] for row in rows]


@pytest.mark.parametrize("table", TABLES)
async def test_update_only_owned_columns(
    seeded: tuple[asyncpg.Connection, Seed], table: str
) -> None:
    conn, seed = seeded
    where, args = seed.key(table)
    actual: dict[str, set[str]] = {role: set() for role in schema.ROLES}
    for column in await columns_of(conn, table):
        for role in schema.ROLES:
            sql = f'UPDATE {table} SET "{column}" = "{column}" WHERE {where}'
            if await allowed(conn, role, sql, *args):
                actual[role].add(column)
    expected = {role: set(schema.OWNERS[table].get(role, ())) for role in schema.ROLES}
    assert actual == expected


@pytest.mark.parametrize("table", TABLES)
async def test_insert_and_delete_only_by_their_roles(
    seeded: tuple[asyncpg.Connection, Seed], table: str
) -> None:
    conn, seed = seeded
    insert_sql, insert_args = seed.new_row(table)
    where, key_args = seed.key(table)
    inserters = {r for r in schema.ROLES if await allowed(conn, r, insert_sql, *insert_args)}
    deleters = {
        r
        for r in schema.ROLES
        if await allowed(conn, r, f"DELETE FROM {table} WHERE {where}", *key_args)
    }
    assert inserters == schema.INSERTERS[table]
    assert deleters == schema.DELETERS[table]


@pytest.mark.parametrize("role", schema.ROLES)
async def test_every_role_reads_everything(
    seeded: tuple[asyncpg.Connection, Seed], role: str
) -> None:
    conn, _ = seeded
    async with conn.transaction():
        await conn.execute(f"SET LOCAL ROLE {role}")
        for table in TABLES:
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 1, table
        assert await conn.fetchval("SELECT version_num FROM alembic_version")


async def test_foreign_key_actions_need_no_grant(seeded: tuple[asyncpg.Connection, Seed]) -> None:
    """Deleting an avatar nulls generations.avatar_id, which the bot may not UPDATE itself."""
    conn, seed = seeded
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE aisha_bot")
        await conn.execute("DELETE FROM avatars WHERE id = $1", seed.avatar_id)
        await conn.execute("RESET ROLE")
        assert await conn.fetchval("SELECT main_avatar_id FROM users") is None
        assert await conn.fetchval("SELECT avatar_id FROM generations") is None
        assert await conn.fetchval("SELECT count(*) FROM photos") == 0
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE aisha_bot")
        await conn.execute("DELETE FROM users WHERE id = $1", USER_ID)
        await conn.execute("RESET ROLE")
        for table in ("avatars", "photos", "generations", "generated_images"):
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0, table


async def test_role_as_startup_setting_survives_pool_reset(
    db_url: str, seeded: tuple[asyncpg.Connection, Seed]
) -> None:
    """What services do: asyncpg `server_settings={"role": ...}` on the superuser login."""
    _, seed = seeded
    pool = await asyncpg.create_pool(
        db_url, min_size=1, max_size=1, server_settings={"role": schema.TRAINER}
    )
    assert pool is not None
    try:
        for _ in range(2):  # the second acquire follows the pool's reset
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT current_user") == schema.TRAINER
                await conn.execute(
                    "UPDATE avatars SET fal_request_id = 'req-9' WHERE id = $1", seed.avatar_id
                )
                for column in ("name", "training_logs"):
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await conn.execute(
                            f"UPDATE avatars SET {column} = 'x' WHERE id = $1", seed.avatar_id
                        )
                # The startup role is the session's default role: RESET ROLE returns to it,
                # and RESET ALL (the pool's reset) never touches the role at all, so a stray
                # SET ROLE would outlive the release. Services must not use SET ROLE.
                await conn.execute("SET ROLE aisha_bot")
                await conn.execute("RESET ALL")
                assert await conn.fetchval("SELECT current_user") == schema.BOT
                await conn.execute("RESET ROLE")
                assert await conn.fetchval("SELECT current_user") == schema.TRAINER
    finally:
        await pool.close()
