"""Real servers for the suite: embedded NATS and PostgreSQL on free loopback ports.

Set AISHA_TEST_NATS_URL / AISHA_TEST_DATABASE_URL to run against external servers instead.
The bot fixtures (`emu`, `js`, `admin_pool`, `bot`, `bot_overrides`) come from tests/botkit.py.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import nats
import pytest
from nats.js.object_store import ObjectStore

from sandbox.embedded import EmbeddedNats, EmbeddedPostgres
from tests.botkit import admin_pool, bot, bot_overrides, emu, js  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def state_dir() -> Iterator[Path]:
    # Short path: PostgreSQL's Unix socket path must stay under ~100 bytes.
    with tempfile.TemporaryDirectory(prefix="aisha-t-", dir="/tmp") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def nats_url(state_dir: Path) -> Iterator[str]:
    external = os.environ.get("AISHA_TEST_NATS_URL")
    if external:
        yield external
        return
    with EmbeddedNats(state_dir / "nats") as server:
        yield server.url


@pytest.fixture(scope="session")
def pg_admin_url(state_dir: Path) -> Iterator[str]:
    external = os.environ.get("AISHA_TEST_DATABASE_URL")
    if external:
        yield external
        return
    with EmbeddedPostgres(state_dir / "pg", delete_on_stop=True) as server:
        yield server.url


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def create_database(admin_url: str, template: str | None = None) -> str:
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url)
    try:
        suffix = f" TEMPLATE {template}" if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await conn.close()
    return with_database(admin_url, name)


async def drop_database(admin_url: str, url: str) -> None:
    """Drop the database of `url` (made by `create_database`), even if still connected."""
    conn = await asyncpg.connect(admin_url)
    try:
        name = urlsplit(url).path.lstrip("/")
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def empty_db_url(pg_admin_url: str) -> str:
    """A brand-new empty database for one test."""
    return await create_database(pg_admin_url)


def _migrated_database(admin_url: str) -> str:
    import asyncio

    from services.kit import migrate

    url = asyncio.run(create_database(admin_url))
    migrate.upgrade(url)
    return urlsplit(url).path.lstrip("/")


@pytest.fixture(scope="session")
def migrated_template(pg_admin_url: str) -> str:
    """Name of a database migrated to head once per session; `db_url` copies it per test.

    Nothing may stay connected to it (CREATE DATABASE ... TEMPLATE needs it idle).
    """
    import concurrent.futures

    # Alembic's env.py runs its own event loop: keep it off any loop of this thread.
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        return executor.submit(_migrated_database, pg_admin_url).result()


@pytest.fixture
async def db_url(pg_admin_url: str, migrated_template: str) -> AsyncIterator[str]:
    """A fresh database with the full schema (roles, grants) for one test, dropped after it."""
    url = await create_database(pg_admin_url, template=migrated_template)
    yield url
    await drop_database(pg_admin_url, url)


@pytest.fixture
async def bucket(nats_url: str) -> AsyncIterator[ObjectStore]:
    """A throw-away Object Store bucket on the suite's NATS, deleted after the test."""
    nc = await nats.connect(nats_url)
    stream = nc.jetstream()
    name = f"scratch_{uuid.uuid4().hex[:8]}"
    try:
        yield await stream.create_object_store(name)
    finally:
        await stream.delete_object_store(name)
        await nc.close()
