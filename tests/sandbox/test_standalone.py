"""The emulators' standalone entry points, run as processes the way their READMEs say.

`python -m sandbox.telegram` must serve the Bot API for the configured token only;
`python -m sandbox.fal` prints `export` lines that must be enough for an unmodified fal-client
in another process to reach it. Both stop on SIGTERM with exit status 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest

from sandbox.embedded import free_port
from sandbox.supervisor import ROOT, base_env

pytestmark = pytest.mark.timeout(180)
TOKEN = "123456:standalone-test-token"
CHILD = """
import fal_client
result = fal_client.run("fal-ai/flux/dev", arguments={"prompt": "standalone"})
print(result["images"][0]["url"])
"""


@asynccontextmanager
async def module(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run `python -m <args>`; on exit SIGTERM it and require a clean exit."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *args, env=base_env(), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0


async def line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert raw, f"exited with {proc.returncode}"
    return raw.decode().strip()


async def test_telegram_emulator_serves_the_configured_token_only() -> None:
    port = free_port()
    async with module("sandbox.telegram", "--port", str(port), "--token", TOKEN) as proc:
        banner = await line(proc)
        base = f"http://127.0.0.1:{port}"
        assert banner.startswith(f"Telegram emulator: Bot API at {base}")
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/bot{TOKEN}/getMe") as response:
                me = await response.json()
            assert me["ok"] is True
            assert me["result"]["username"] == "aisha_sandbox_bot"
            async with session.post(f"{base}/bot999:other-token/getMe") as response:
                assert response.status == 401


async def test_fal_emulator_prints_an_environment_a_fal_client_process_can_use() -> None:
    proxy, control = free_port(), free_port()
    args = ("--proxy-port", str(proxy), "--control-port", str(control), "--generation-seconds", "0")
    async with module("sandbox.fal", *args) as proc:
        assert (await line(proc)).endswith(f"127.0.0.1:{control}/_emulator/info")
        assert await line(proc) == "Environment for a fal-client process:"
        printed: dict[str, str] = {}
        while len(printed) < 6:
            key, _, value = (await line(proc)).removeprefix("export ").partition("=")
            printed[key] = value
        assert printed["HTTPS_PROXY"].endswith(f":{proxy}")
        env = {k: v for k, v in os.environ.items() if k not in printed} | printed
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(child.communicate(), 60)
        assert child.returncode == 0, err.decode()[-2000:]
        assert out.decode().strip().startswith("https://")
        jobs_url = f"http://127.0.0.1:{control}/_emulator/jobs"
        async with aiohttp.ClientSession() as session, session.get(jobs_url) as response:
            jobs = await response.json()
        assert any(job["arguments"].get("prompt") == "standalone" for job in jobs), jobs
