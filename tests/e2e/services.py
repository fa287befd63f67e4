"""Runs the real services as processes for end-to-end tests (the launcher's supervisor)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp

from sandbox.embedded import free_port
from sandbox.supervisor import Child, base_env


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
