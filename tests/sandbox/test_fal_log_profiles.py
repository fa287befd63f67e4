"""The product's progress under each log profile the emulator can play (`none`, `tqdm`,
`steps`, `noise`): what FAL's trainers print is undocumented, so the status service must
show the queue position while queued, a percentage only when a line plainly carries one,
and otherwise an estimate (labelled, never above 95 % before the end) — here the real
poller and tracker on a migrated PostgreSQL, polling the emulator through fal-client."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import fal_client
import pytest

from sandbox.fal import FalEmulator
from sandbox.fal.images import training_archive
from services.kit.db import create_pool
from services.kit.schema import STATUS
from services.status.estimate import CAP, TypicalDurations
from services.status.metrics import StatusMetrics
from services.status.poller import Poller, TokenBucket
from services.status.training_tracking import Tracker
from tests.botkit import eventually

APP = "fal-ai/flux-lora-fast-training"
STEPS = 400
#: Nominal emulator seconds of a training: polled several times while it runs.
TRAINING_SECONDS = 2.5


@pytest.fixture
def fal_timings() -> dict[str, Any]:
    return {
        "training_seconds": TRAINING_SECONDS,
        "generation_seconds": 0.2,
        "queue_seconds": 0.4,
        "concurrency": 1,
        "min_training_images": 2,
    }


async def seed(admin: asyncpg.Pool, request_ids: list[str]) -> None:
    """Avatars whose trainings FAL runs, as the trainer leaves them, plus three completed
    runs of the same endpoint and steps: the estimate learns their typical duration."""
    user_id = uuid.uuid4().int % 10**12
    await admin.execute("INSERT INTO users (id, first_name) VALUES ($1, 'P')", user_id)
    rows = [(rid, None) for rid in request_ids] + [(None, s) for s in (2.0, 2.5, 3.0)]
    for request_id, seconds in rows:
        await admin.execute(
            "INSERT INTO avatars (id, user_id, name, gender, status, training_type,"
            " trigger_word, training_attempt, fal_request_id, fal_endpoint, steps,"
            " submitted_attempt, submitted_at, tracked_attempt, fal_status,"
            " training_started_at, training_finished_at) VALUES ($1, $2, 'P', 'female',"
            " 'training', 'style', 'ohwx', 1, $3, $4, $5, 1, now(), 1, $6,"
            " CASE WHEN $7::float8 IS NULL THEN NULL ELSE now() - interval '1 hour' END,"
            " now() - interval '1 hour' + make_interval(secs => $7::float8))",
            uuid.uuid4(),
            user_id,
            request_id,
            APP,
            STEPS,
            "IN_QUEUE" if request_id else "COMPLETED",
            seconds,
        )
    await admin.execute(
        "UPDATE avatars SET training_finished_at = NULL, next_poll_at = now()"
        " WHERE fal_request_id IS NOT NULL"
    )


async def progress_events(admin: asyncpg.Pool, request_id: str) -> list[dict[str, Any]]:
    rows = await admin.fetch(
        "SELECT payload FROM outbox WHERE subject = 'aisha.training.progress'"
        " ORDER BY created_at, id"
    )
    events = [json.loads(bytes(r["payload"])) for r in rows]
    return [e for e in events if e["request_id"] == request_id]


@pytest.mark.parametrize("profile", ["none", "tqdm", "steps", "noise"])
async def test_progress_under_each_log_profile(
    profile: str,
    fal_emu: FalEmulator,
    fal: fal_client.AsyncClient,
    db_url: str,
    admin_pool: asyncpg.Pool,
) -> None:
    fal_emu.configure(log_profile=profile)
    url = await fal.upload(training_archive(2, (64, 64)), "application/zip", "p.zip")
    args = {"images_data_url": url, "trigger_word": "ohwx", "steps": STEPS}
    handles = [await fal.submit(APP, arguments=args) for _ in range(2)]
    request_ids = [h.request_id for h in handles]
    await seed(admin_pool, request_ids)
    pool = await create_pool(db_url, STATUS, max_size=2)
    try:
        metrics = StatusMetrics()
        poller = Poller(
            pool=pool,
            fal=fal,
            tracker=Tracker(pool, metrics),
            webhooks=None,  # type: ignore[arg-type]  # poll_once alone: no sweep
            metrics=metrics,
            interval=0.1,
            batch=10,
            budget=TokenBucket(100),
            durations=TypicalDurations(pool),
        )

        async def both_finished() -> bool:
            await poller.poll_once()
            done = await admin_pool.fetchval(
                "SELECT count(*) FROM avatars WHERE fal_request_id = ANY($1)"
                " AND training_finished_at IS NOT NULL AND training_progress = 100",
                request_ids,
            )
            return bool(done == 2)

        await eventually(both_finished, within=60)
    finally:
        await pool.close()

    second = await progress_events(admin_pool, request_ids[1])
    queued = [e for e in second if e["fal_status"] == "IN_QUEUE"]
    assert queued, "the second job waited behind the emulator's limit of 1"
    assert all(e["queue_position"] is not None and e["progress"] == 0 for e in queued)
    for request_id in request_ids:
        running = [
            e
            for e in await progress_events(admin_pool, request_id)
            if e["fal_status"] == "IN_PROGRESS"
        ]
        assert running, profile
        from_logs = [e for e in running if not e["estimated"]]
        estimates = [e for e in running if e["estimated"]]
        assert all(e["progress"] <= CAP for e in estimates)
        if profile in ("tqdm", "steps"):
            assert from_logs, "a plain percentage in the logs is shown as it is"
            assert max(e["progress"] for e in from_logs) > 0
        else:
            assert not from_logs, "no percentage read out of lines that carry none"
            # Learned from the seeded runs (~2.5 s), not the 5 min starting value.
            assert max(e["progress"] for e in estimates) >= 20
            assert any(e["eta_seconds"] is not None for e in estimates)
