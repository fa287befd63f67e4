"""Runs the real services as processes for end-to-end tests (the launcher's supervisor).

Fixtures `js` (JetStream, provisioned) and `stack` (the status service and the trainer against
the module's `fal` emulator fixture): import them into a test module by name."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from nats.js import JetStreamContext

from sandbox.embedded import free_port
from sandbox.fal import FalEmulator
from sandbox.stack import Stack, StackOptions
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
def stack_overrides() -> dict[str, str]:
    """Extra environment of the services (a module overrides it)."""
    return {}


@pytest.fixture
async def stack(
    db_url: str,
    nats_url: str,
    fal: FalEmulator,
    js: JetStreamContext,
    tmp_path: Path,
    stack_overrides: dict[str, str],
) -> AsyncIterator[dict[str, Child]]:
    """The status service, then the trainer (its webhooks go to status's port), on `fal`."""
    env = {
        "DATABASE_URL": db_url,
        "NATS_URL": nats_url,
        "PUBLIC_BASE_URL": "http://127.0.0.1:1",  # replaced below once status has a port
        "STATUS_POLL_INTERVAL_SECONDS": "0.5",
        **fal.client_env(),
        **stack_overrides,
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


#: Variables of the test process that would point the product at external services.
EXTERNAL = {"TELEGRAM_BOT_TOKEN", "FAL_KEY", "NATS_URL", "DATABASE_URL", "FAL_TRAINING_TEST_MODE"}


@contextlib.asynccontextmanager
async def whole_product(
    db_url: str, state_dir: Path, training_seconds: float = 2.0, **environ: str
) -> AsyncIterator[Stack]:
    """The product as `./scripts/run` starts it (emulators, embedded NATS, the three services)
    on the test's database; `environ` adds settings. The stack's HTTP ports are free ones,
    listed in `stack.ports`."""
    ports = {name: free_port() for name in ("bot", "trainer", "status")}
    env = {k: v for k, v in os.environ.items() if k not in EXTERNAL}
    env.update({f"{name.upper()}_HTTP_PORT": str(port) for name, port in ports.items()})
    env.update({"DATABASE_URL": db_url, "ADMIN_IDS": "", **environ})
    options = StackOptions(
        state_dir=state_dir,
        webchat_port=free_port(),
        nats_port=free_port(),
        fal_training_seconds=training_seconds,
        poll_interval_seconds=0.5,
    )
    stack = Stack(options, environ=env)
    await stack.start()
    stack.db_url = db_url  # type: ignore[attr-defined]
    stack.ports = ports  # type: ignore[attr-defined]
    try:
        yield stack
    finally:
        await stack.stop()
