"""A status answer fal-client cannot read — a status name FAL may add, fields nobody
documented, no `queue_position` — is a failed poll (backed off, counted `unreadable`), not
the end of the poller: fal-client's `ValueError`/`KeyError` used to escape `poll_once`,
killing the poller task and with it the status service, over and over. Unknown fields next
to a known status are simply read. Real fal-client, the FAL emulator, real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import fal_client
import pytest

from sandbox.fal import FalEmulator
from services.kit.db import create_pool
from services.status.metrics import StatusMetrics
from services.status.poller import Poller, TokenBucket

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


def polls(metrics: StatusMetrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("aisha_status_polls_total", {"outcome": outcome})
    return value or 0.0


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
        user_id, avatar_id = uuid.uuid4().int % 10**12, uuid.uuid4()
        await admin.execute("INSERT INTO users (id, first_name) VALUES ($1, 'U')", user_id)
        await admin.execute(
            "INSERT INTO avatars (id, user_id, name, gender, status, training_type, trigger_word,"
            " training_attempt, fal_request_id, fal_endpoint, submitted_attempt, submitted_at,"
            " tracked_attempt, fal_status, next_poll_at) VALUES ($1, $2, 'U', 'female',"
            " 'training', 'style', 'ohwx', 1, $3, $4, 1, now(), 1, 'IN_QUEUE', now())",
            avatar_id,
            user_id,
            handle.request_id,
            APP,
        )
        metrics, tracker = StatusMetrics(), Progress()
        poller = Poller(
            pool=pool,
            fal=fal,
            tracker=tracker,  # type: ignore[arg-type]
            webhooks=None,  # type: ignore[arg-type]
            metrics=metrics,
            interval=5.0,
            batch=10,
            budget=TokenBucket(100.0),
        )
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
