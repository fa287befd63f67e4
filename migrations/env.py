"""Alembic environment: async engine (asyncpg) from DATABASE_URL, metadata from the kit.

URL, first found: `config.attributes["database_url"]` (services.kit.migrate), the
`DATABASE_URL` environment variable, `sqlalchemy.url` in alembic.ini. It may be a plain
`postgresql://` URL with libpq-style query parameters such as `?host=/socket/dir`: the
connection is made by asyncpg from that URL itself, so anything asyncpg accepts works.
"""

from __future__ import annotations

import asyncio
import os
from logging.config import fileConfig

import asyncpg
from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.kit.migrate import LOGGING_ATTRIBUTE, URL_ATTRIBUTE, asyncpg_dsn, sqlalchemy_url
from services.kit.schema import metadata

config = context.config

if config.config_file_name is not None and config.attributes.get(LOGGING_ATTRIBUTE, True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata

#: Serializes concurrent `upgrade`s (N replicas starting at once) on one database.
MIGRATION_LOCK_KEY = 0x41495348  # "AISH"


def database_url() -> str:
    url = (
        config.attributes.get(URL_ATTRIBUTE)
        or os.environ.get("DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
    )
    if not url:
        raise RuntimeError("set DATABASE_URL (e.g. postgresql://user:pass@host/db)")
    return str(url)


def run_migrations_offline() -> None:
    """`alembic upgrade head --sql`: emit SQL without connecting."""
    context.configure(
        url=sqlalchemy_url(database_url()),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def run_async_migrations() -> None:
    dsn = asyncpg_dsn(database_url())

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(dsn)

    engine = create_async_engine(
        "postgresql+asyncpg://", async_creator=connect, poolclass=pool.NullPool
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
