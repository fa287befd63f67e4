"""Fixtures of the FAL emulator tests: the emulator (`fal_emu`, timings from `fal_timings`,
which a module may override), the real fal-client pointed at it (`fal`), a raw httpx client
through its CONNECT proxy (`http`) and a webhook receiver (`receiver`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fal_client
import httpx
import pytest

from sandbox.fal import FalEmulator
from sandbox.fal.testing import WebhookReceiver


@pytest.fixture
def fal_timings() -> dict[str, Any]:
    """How long the emulator's trainings, generations and queueing take (override per module)."""
    return {"training_seconds": 0.6, "generation_seconds": 0.2, "queue_seconds": 0.15}


@pytest.fixture
async def fal_emu(tmp_path: Path, fal_timings: dict[str, Any]) -> AsyncIterator[FalEmulator]:
    async with FalEmulator(
        webhook_backoff_seconds=0.05, state_dir=tmp_path, **fal_timings
    ) as emulator:
        yield emulator


@pytest.fixture
def fal(fal_emu: FalEmulator, monkeypatch: pytest.MonkeyPatch) -> fal_client.AsyncClient:
    for key, value in fal_emu.client_env().items():
        monkeypatch.setenv(key, value)
    return fal_client.AsyncClient()


@pytest.fixture
async def http(fal_emu: FalEmulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        proxy=fal_emu.proxy_url, verify=fal_emu.ssl_context(), trust_env=False
    ) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver()
    await hook.start()
    yield hook
    await hook.stop()
