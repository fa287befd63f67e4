"""`python -m sandbox` — what `./scripts/run` execs — as a process, the way a person uses it.

The other e2e tests build the launcher's `Stack` in-process; this one runs the entry point
itself: it starts every part on a fresh state directory, prints the URLs it promises, the bot
answers a user through the web chat's emulator, SIGTERM (what Ctrl-C amounts to) stops
everything with exit status 0 and frees the ports, and the data stays in the state directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from sandbox.embedded import EmbeddedPostgres, free_port, port_is_free
from sandbox.supervisor import ROOT, base_env
from tests.e2e.services import EXTERNAL

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
USER_ID = 424242


async def banner(proc: asyncio.subprocess.Process, log: Path) -> dict[str, str]:
    """The `name  url` lines printed between "Aisha is running" and the Ctrl-C hint."""
    assert proc.stdout is not None
    urls: dict[str, str] = {}
    running = False
    while True:
        raw = await asyncio.wait_for(proc.stdout.readline(), 180)
        if not raw:
            tail = (await asyncio.to_thread(log.read_text))[-2000:]
            raise AssertionError(f"launcher exited ({proc.returncode}): {tail}")
        line = raw.decode().strip()
        if line.startswith("Aisha is running"):
            running = True
        elif line.startswith("Ctrl-C"):
            assert running
            return urls
        elif running and line:
            name, _, url = line.rpartition(" ")
            urls[name.strip()] = url


async def bot_replies(session: aiohttp.ClientSession, web: str) -> list[str]:
    async with session.get(f"{web}/_emu/chats/{USER_ID}/transcript") as response:
        assert response.status == 200
        entries = (await response.json())["messages"]
    return [e["message"].get("text", "") for e in entries if e["outgoing"]]


async def test_launcher_runs_the_product_stops_cleanly_and_keeps_the_data(tmp_path: Path) -> None:
    state, log = tmp_path / "state", tmp_path / "launcher.log"
    webchat = free_port()
    service_ports = {name: free_port() for name in ("bot", "trainer", "status")}
    env = {k: v for k, v in base_env().items() if k not in EXTERNAL}
    env.update({f"{name.upper()}_HTTP_PORT": str(p) for name, p in service_ports.items()})
    env["ADMIN_IDS"] = ""
    args = ("--state-dir", str(state), "--webchat-port", str(webchat), "--training-seconds", "1")
    with open(log, "wb") as err:  # noqa: ASYNC230 - a local file, opened once
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sandbox", *args, env=env, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=err,
        )  # fmt: skip
    try:
        urls = await banner(proc, log)
        web = f"http://127.0.0.1:{webchat}"
        assert urls["web chat"].rstrip("/") == web
        for name, port in service_ports.items():
            assert urls[f"{name} health"] == f"http://127.0.0.1:{port}/healthz"
        assert urls["logs"] == str(state.resolve() / "logs")
        async with aiohttp.ClientSession() as session:
            for name in service_ports:
                async with session.get(urls[f"{name} health"]) as response:
                    assert response.status == 200, name
            async with session.get(web) as response:
                assert response.status == 200
                assert "<html" in (await response.text()).lower()
            user = {"id": USER_ID, "first_name": "Lena", "language_code": "en"}
            async with session.post(f"{web}/_emu/users", json=user) as response:
                assert response.status == 200
            async with session.post(
                f"{web}/_emu/users/{USER_ID}/messages", json={"text": "/start"}
            ) as response:
                assert response.status == 200
            for _ in range(300):
                if await bot_replies(session, web):
                    break
                await asyncio.sleep(0.2)
            assert await bot_replies(session, web), "the bot never answered /start"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(proc.wait(), 90)
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    assert code == 0, log.read_text()[-2000:]
    assert all(port_is_free(p) for p in (webchat, *service_ports.values()))
    assert {"nats", "pg", "logs"} <= {p.name for p in state.iterdir()}
    # The user the bot met is still in the embedded PostgreSQL the launcher left behind.
    with EmbeddedPostgres(state / "pg") as pg:
        conn = await asyncpg.connect(pg.url)
        try:
            assert await conn.fetchval("SELECT first_name FROM users WHERE id = $1", USER_ID) == (
                "Lena"
            )
        finally:
            await conn.close()
