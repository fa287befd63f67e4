"""Runs the real services as processes for end-to-end tests (the launcher's supervisor).

Fixtures `js` (JetStream, provisioned) and `stack` (the status service and the trainer against
the module's `fal` emulator fixture): import them into a test module by name."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from nats.js import JetStreamContext

from sandbox.embedded import free_port
from sandbox.fal import FalEmulator
from sandbox.supervisor import Child, base_env
from tests.botkit import jetstream


async def wait_healthy(port: int, limit: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    async with aiohttp.ClientSession() as session:
        while asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise AssertionError(f"service on port {port} never became ready")


@contextlib.asynccontextmanager
async def running_services(
    names: tuple[str, ...], env: Mapping[str, str], log_dir: Path
) -> AsyncIterator[dict[str, Child]]:
    """Start `python -m services.<name>` for each name; stop them (SIGTERM) afterwards."""
    children: dict[str, Child] = {}
    ports: dict[str, int] = {}
    try:
        for name in names:
            ports[name] = free_port()
            child_env = {**base_env(), **env, f"{name.upper()}_HTTP_PORT": str(ports[name])}
            child = Child(name, f"services.{name}", child_env, log_dir / f"{name}.log")
            child.env["AISHA_TEST_PORT"] = str(ports[name])
            await child.start()
            children[name] = child
        for name in names:
            await wait_healthy(ports[name])
        yield children
    finally:
        await asyncio.gather(*(c.stop(grace=10) for c in children.values()))


def service_port(child: Child) -> int:
    return int(child.env["AISHA_TEST_PORT"])


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    async with jetstream(nats_url, provisioned=True) as context:
        yield context


@pytest.fixture
async def stack(
    db_url: str, nats_url: str, fal: FalEmulator, js: JetStreamContext, tmp_path: Path
) -> AsyncIterator[dict[str, Child]]:
    """The status service, then the trainer (its webhooks go to status's port), on `fal`."""
    env = {
        "DATABASE_URL": db_url,
        "NATS_URL": nats_url,
        "PUBLIC_BASE_URL": "http://127.0.0.1:1",  # replaced below once status has a port
        "STATUS_POLL_INTERVAL_SECONDS": "0.5",
        **fal.client_env(),
    }
    async with running_services(("status",), env, tmp_path) as status:
        env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{service_port(status['status'])}"
        async with running_services(("trainer",), env, tmp_path) as trainer:
            yield {**status, **trainer}


async def insert_user(conn: asyncpg.Connection) -> int:
    """A user row (random id, named Ann) as the bot inserts it on /start."""
    user_id = int(uuid.uuid4().int % 10**9)
    await conn.execute("INSERT INTO users (id, first_name) VALUES ($1, 'Ann')", user_id)
    return user_id
