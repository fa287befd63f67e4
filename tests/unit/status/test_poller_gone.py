"""A completed training whose result FAL no longer holds (kept 1 h, 6 min when ≥ 10 KB) ends
as a failure that says so; it used to be a failed poll, repeated for ever. A result FAL
answers as HTML is a failed poll, not an exception that ends the poller. Real fal-client,
the FAL emulator, real PostgreSQL; the tracker is a recorder (its SQL is tested elsewhere).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import fal_client
import pytest

from sandbox.fal import FalEmulator
from sandbox.fal.images import training_archive
from services.kit.db import create_pool
from services.status.metrics import StatusMetrics
from tests.unit.status.pollkit import insert_training, make_poller, polls

APP = "fal-ai/flux-lora-fast-training"


@pytest.fixture
async def emu(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FalEmulator]:
    async with FalEmulator(training_seconds=0.1, queue_seconds=0, min_training_images=1) as e:
        for key, value in e.client_env().items():
            monkeypatch.setenv(key, value)
        yield e


class Finishes:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def finish(self, request_id: str, **kwargs: Any) -> bool:
        self.calls.append({"request_id": request_id, **kwargs})
        return True


@pytest.mark.parametrize(
    ("fault", "params", "finished"),
    [
        ("result_expired", {"seconds": 0}, True),
        ("http_error", {"op": "result", "status": 200, "body": "html"}, False),
    ],
)
async def test_an_expired_result_fails_the_job_and_html_is_a_failed_poll(
    emu: FalEmulator, db_url: str, fault: str, params: dict[str, Any], finished: bool
) -> None:
    fal = fal_client.AsyncClient()
    archive = emu.put_file(training_archive(2), "application/zip", "a.zip")
    emu.add_fault(fault, times=1, **params)
    handle = await fal.submit(APP, {"images_data_url": archive, "trigger_word": "ohwx"})
    job = emu.job(handle.request_id)
    assert job is not None
    await asyncio.wait_for(job.done.wait(), 10)
    pool = await create_pool(db_url, "aisha_status", max_size=2)
    admin = await asyncpg.connect(db_url)
    try:
        await insert_training(admin, handle.request_id, APP, "IN_PROGRESS")
        metrics, tracker = StatusMetrics(), Finishes()
        poller = make_poller(pool, fal, tracker, metrics)
        assert await poller.poll_once() == 1  # returns instead of raising
        assert job.failure is None, job.failure
        if finished:
            assert polls(metrics, "gone") == 1
            [call] = tracker.calls
            assert call["ok"] is False
            assert "expired" in call["error"]
        else:
            assert polls(metrics, "unreadable") == 1
            assert tracker.calls == []
    finally:
        await admin.close()
        await pool.close()
