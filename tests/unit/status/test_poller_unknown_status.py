"""A status answer fal-client cannot read — a status name FAL may add, fields nobody
documented, no `queue_position` — is a failed poll (backed off, counted `unreadable`), not
the end of the poller: fal-client's `ValueError`/`KeyError` used to escape `poll_once`,
killing the poller task and with it the status service, over and over. Unknown fields next
to a known status are simply read. Real fal-client, the FAL emulator, real PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import fal_client
import pytest

from sandbox.fal import FalEmulator
from services.kit.db import create_pool
from services.status.metrics import StatusMetrics
from tests.unit.status.pollkit import insert_training, make_poller, polls

APP = "fal-ai/flux-lora-fast-training"


@pytest.fixture
async def emu(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FalEmulator]:
    async with FalEmulator(training_seconds=30, queue_seconds=0) as emulator:
        for key, value in emulator.client_env().items():
            monkeypatch.setenv(key, value)
        yield emulator


class Progress:
    """Records what the poller reports (the tracker's part is tested elsewhere)."""

    def __init__(self) -> None:
        self.reports: list[tuple[Any, ...]] = []

    async def progress(self, request_id: str, *args: Any, **_: Any) -> None:
        self.reports.append((request_id, *args))


@pytest.mark.parametrize(
    ("status", "fields", "outcome"),
    [
        ("SCHEDULED", {"estimated_start": "soon"}, "unreadable"),  # a status FAL may add
        ("IN_QUEUE", {"queue_eta": 12}, "unreadable"),  # no queue_position
        ("IN_PROGRESS", {"logs": [], "progress_hint": 0.4, "runner": {"gpu": "H100"}}, "ok"),
    ],
)
async def test_an_unreadable_status_is_a_failed_poll_not_a_crash(
    emu: FalEmulator, db_url: str, status: str, fields: dict[str, Any], outcome: str
) -> None:
    fal = fal_client.AsyncClient()
    handle = await fal.submit(APP, {"images_data_url": "https://v3.fal.media/files/a/b.zip"})
    emu.add_fault("status_unknown", op="status", times=1, status=status, fields=fields)
    pool = await create_pool(db_url, "aisha_status", max_size=2)
    admin = await asyncpg.connect(db_url)
    try:
        avatar_id = await insert_training(admin, handle.request_id, APP, "IN_QUEUE")
        metrics, tracker = StatusMetrics(), Progress()
        poller = make_poller(pool, fal, tracker, metrics)
        assert await poller.poll_once() == 1  # returns instead of raising
        assert polls(metrics, outcome) == 1
        assert polls(metrics, "error") == 0
        later = await admin.fetchval(
            "SELECT next_poll_at > now() + interval '3 seconds' FROM avatars WHERE id = $1",
            avatar_id,
        )
        assert later is True  # polled again later, like after any failed poll
        if outcome == "ok":
            assert [r[1] for r in tracker.reports] == ["IN_PROGRESS"]
        else:
            assert tracker.reports == []
    finally:
        await admin.close()
        await pool.close()
