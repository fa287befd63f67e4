"""Generation results whose FAL URLs expire before they are fetched.

FAL keeps result files about an hour; the status service copies them into the Object
Store as soon as the job ends. When they are gone already, the generation must end as
failed with the user told — not hang, not retry forever — and one that could be fetched
completes with its images stored. One FAL job per generation either way.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from contracts import GenerationRequested, encode, utcnow
from tests.faults.conftest import Product
from tests.faults.flows import Outcome, drained, fal_jobs_per_key

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]
PROMPT_EXPIRED = "a lighthouse at dawn, expired"
PROMPT_FINE = "a lighthouse at dusk, fine"


async def request_generation(p: Product, prompt: str) -> tuple[uuid.UUID, int]:
    """A quick generation (no avatar) stored and requested as the bot does it."""
    user = await p.telegram.create_user("Gen", language_code="en")
    uid = int(user["id"])
    conn = await asyncpg.connect(p.db_url, server_settings={"role": "aisha_bot"})
    try:
        await conn.execute("INSERT INTO users (id, first_name) VALUES ($1, 'Gen')", uid)
        generation_id = await conn.fetchval(
            "INSERT INTO generations (user_id, prompt, aspect_ratio, num_images, seed)"
            " VALUES ($1, $2, '1:1', 1, 7) RETURNING id",
            uid,
            prompt,
        )
    finally:
        await conn.close()
    event = GenerationRequested(
        event_id=str(uuid.uuid4()),
        occurred_at=utcnow(),
        generation_id=str(generation_id),
        user_id=uid,
        avatar_id=None,
        prompt=prompt,
        aspect_ratio="1:1",
        num_images=1,
        seed=7,
    )
    await p.js.publish(event.subject, encode(event), headers={"Nats-Msg-Id": event.event_id})
    return generation_id, uid


async def final_status(p: Product, generation_id: uuid.UUID, within: float) -> str:
    deadline = asyncio.get_running_loop().time() + within
    status = ""
    while asyncio.get_running_loop().time() < deadline:
        conn = await asyncpg.connect(p.db_url)
        try:
            status = str(
                await conn.fetchval("SELECT status FROM generations WHERE id = $1", generation_id)
            )
        finally:
            await conn.close()
        if status in ("completed", "failed"):
            return status
        await asyncio.sleep(0.3)
    return status


@pytest.mark.timeout(90)
async def test_expired_result_urls_fail_the_generation_and_the_user_is_told(
    shared: Product,
) -> None:
    p = shared
    p.fal.add_fault("url_expiry", contains=PROMPT_EXPIRED, times=1, seconds=0)
    expired, expired_uid = await request_generation(p, PROMPT_EXPIRED)
    fine, _ = await request_generation(p, PROMPT_FINE)
    statuses = await asyncio.gather(final_status(p, expired, 45), final_status(p, fine, 45))
    told = [
        r
        for r in p.telegram.world.messages.get(expired_uid, {}).values()
        if r.outgoing and not r.deleted
    ]
    jobs = fal_jobs_per_key(p.fal)
    mine = [jobs[f"generation:{g}"] for g in (expired, fine)]
    done = sum(s in ("completed", "failed") for s in statuses)
    outcome = Outcome(started=2, completed=done, lost=2 - done, duplicated=sum(mine) - 2)
    print(outcome.line("generation_url_expiry", 0))
    assert statuses == ["failed", "completed"]
    assert len(told) >= 1, "the user whose results expired was not told"
    assert mine == [1, 1]
    await drained(p.db_url, p.js, p.dead_letters)
