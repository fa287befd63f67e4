"""Real servers for the suite: embedded NATS and PostgreSQL on free loopback ports.

Set AISHA_TEST_NATS_URL / AISHA_TEST_DATABASE_URL to run against external servers instead.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from sandbox.embedded import EmbeddedNats, EmbeddedPostgres

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


@pytest.fixture
async def empty_db_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A brand-new empty database for one test."""
    yield await create_database(pg_admin_url)
