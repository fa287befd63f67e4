"""The operator's smoke check (`python -m services.kit.smoke`) run as CI runs it: against the
emulators, with the real status service answering `/fal/webhook`.

It passes on a healthy setup, reports a bad bot token as FAIL with exit code 1 (the other
checks still run), and never prints a secret.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandbox.fal import FalEmulator
from sandbox.supervisor import ROOT, base_env
from sandbox.telegram import TelegramEmulator
from services.kit import smoke
from services.status.config import DEFAULT_JWKS_URL
from services.trainer.describe import CAPTIONER
from tests.e2e.services import EXTERNAL, running_services, service_port

pytestmark = pytest.mark.e2e
TOKEN = "7000000042:smoke-test-token-secret"


@pytest.fixture
async def fal(tmp_path: Path) -> AsyncIterator[FalEmulator]:
    async with FalEmulator(
        generation_seconds=0.2, queue_seconds=0.1, strict_key=True, state_dir=tmp_path / "fal"
    ) as emulator:
        yield emulator


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator(token=TOKEN) as emulator:
        yield emulator


@pytest.fixture
async def public_base_url(
    db_url: str, nats_url: str, fal: FalEmulator, tmp_path: Path
) -> AsyncIterator[str]:
    """The status service (it owns `/fal/webhook`), as the public address points at it."""
    env = {"DATABASE_URL": db_url, "NATS_URL": nats_url, **fal.client_env()}
    async with running_services(("status",), env, tmp_path) as children:
        yield f"http://127.0.0.1:{service_port(children['status'])}"


async def run_smoke(env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.kit.smoke",
        env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def smoke_env(fal: FalEmulator, telegram: TelegramEmulator, public: str) -> dict[str, str]:
    env = {k: v for k, v in base_env().items() if k not in EXTERNAL}
    env.update(fal.client_env())
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_URL=telegram.base_url,
        PUBLIC_BASE_URL=public,
    )
    return env


def rows(output: str) -> dict[str, str]:
    """check name -> PASS/FAIL, from the printed table."""
    found = {}
    for line in output.splitlines():
        for name in (
            "telegram getMe",
            "telegram webhook info",
            "fal auth",
            "fal upload (60 s lifetime)",
            "fal caption",
            "fal jwks",
            "our /fal/webhook from outside",
        ):
            if line.startswith(name + "  "):
                found[name] = line[len(name) :].split()[0]
    return found


async def test_smoke_passes_against_the_emulators(fal, telegram, public_base_url):
    code, output = await run_smoke(smoke_env(fal, telegram, public_base_url))
    assert code == 0, output
    assert set(rows(output).values()) == {"PASS"}, output
    assert len(rows(output)) == 7
    assert "7/7 passed" in output
    assert "≈$0.001" in output  # the caption is the one check that costs money
    for secret in (TOKEN, TOKEN.partition(":")[2], fal.fal_key.partition(":")[2]):
        assert secret not in output
    (upload,) = fal.recorder.find(op="upload")
    assert '"expiration_duration_seconds": 60' in upload.headers["X-Fal-Object-Lifecycle"]
    (caption,) = [j for j in fal.jobs if j.app_id == CAPTIONER]
    assert caption.succeeded
    assert telegram.world.stats["call:getWebhookInfo"] == 1


async def test_a_bad_bot_token_fails_with_exit_code_1(fal, telegram, public_base_url):
    env = smoke_env(fal, telegram, public_base_url)
    env["TELEGRAM_BOT_TOKEN"] = "7000000042:wrong-token-secret"
    env["FAL_KEY"] = "sandbox-key-id:wrong-secret"
    code, output = await run_smoke(env)
    assert code == 1, output
    result = rows(output)
    assert result["telegram getMe"] == "FAIL"
    assert result["telegram webhook info"] == "FAIL"
    assert result["fal auth"] == "FAIL"
    assert result["fal jwks"] == "PASS"  # public keys need no key
    assert result["our /fal/webhook from outside"] == "PASS"
    assert "wrong-token-secret" not in output
    assert "wrong-secret" not in output


def test_smoke_calls_what_the_services_call():
    assert smoke.DEFAULT_JWKS_URL == DEFAULT_JWKS_URL
    assert smoke.CAPTIONER == CAPTIONER
