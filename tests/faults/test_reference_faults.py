"""A reference job killed in its most dangerous moment: the trainer dies (exit 137) right
after FAL accepted the image-to-image job and before the ledger recorded it.

The request is made exactly as the bot makes it (`ReferenceService.create`: the row and its
`GenerationRequested` in one transaction, published by the bot's own relay), from a photo
stored as the bot stores one. After the restart the redelivered request must not submit
again: the job is adopted from its webhook, the user gets the one picture, the credits are
charged once and not refunded, and nothing is left in an outbox or a consumer.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from contracts.jetstream import OBJ_PHOTOS
from sandbox.fal.images import photo
from services.bot.app.pricing import Pricing
from services.bot.reference.intake import check, object_name
from services.bot.reference.service import ReferenceService
from services.kit import credits
from tests.faults.conftest import Product
from tests.faults.flows import drained, fal_jobs_per_key

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]
POINT = "trainer.after_generation_submit"
PRICE = 3


async def request_reference(p: Product) -> tuple[int, uuid.UUID]:
    """A user with a ready avatar and a stored reference photo; the job requested."""
    user = await p.telegram.create_user("Ref", language_code="en")
    uid = int(user["id"])
    lora = p.fal.put_file(b"AISHA-LORA" * 64, "application/octet-stream", "lora.safetensors")
    reference_id = uuid.uuid4()
    name = object_name(uid, reference_id)
    stored = check(photo(9, (640, 480)))
    await (await p.js.object_store(OBJ_PHOTOS.name)).put(name, stored.data)
    pool = await asyncpg.create_pool(p.db_url, server_settings={"role": "aisha_bot"})
    try:
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO users (id, first_name, language) VALUES ($1, 'Ref', 'en')", uid
            )
            async with conn.transaction():
                await credits.post(conn, user_id=uid, kind=credits.Kind.ADMIN_GRANT,
                                   amount=10, key=f"test-grant:{uid}")  # fmt: skip
        admin = await asyncpg.connect(p.db_url)
        try:  # the LoRA status columns are the status service's
            avatar_id = await admin.fetchval(
                "INSERT INTO avatars (user_id, name, gender, trigger_word, status,"
                " training_attempt, fal_status, diffusers_lora_file_url, training_finished_at)"
                " VALUES ($1, 'Ann', 'female', 'TOKfault', 'completed', 1, 'COMPLETED', $2,"
                " now()) RETURNING id",
                uid, lora,
            )  # fmt: skip
        finally:
            await admin.close()
        await pool.execute(
            "INSERT INTO reference_photos (id, user_id, avatar_id, object_name, sha256,"
            " size_bytes, width, height) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            reference_id, uid, avatar_id, name, stored.sha256, stored.size_bytes,
            stored.width, stored.height,
        )  # fmt: skip
        made = await ReferenceService(pool, Pricing(reference=PRICE)).create(uid, reference_id, 2)
    finally:
        await pool.close()
    assert made is not None
    return uid, made.id


def photos_sent(p: Product, uid: int) -> list[dict]:
    return [
        r.message
        for r in p.telegram.world.messages.get(uid, {}).values()
        if r.outgoing and not r.deleted and r.message.get("photo")
    ]


@pytest.mark.timeout(200)
async def test_trainer_killed_after_fal_took_the_job_delivers_once_charged_once(
    shared: Product,
) -> None:
    p = shared
    await p.services.rearm("trainer", POINT)
    exits_before = len(p.services.exits)
    uid, generation_id = await request_reference(p)
    deadline = asyncio.get_running_loop().time() + 30
    while p.services.crashed_at(POINT) == 0:
        assert asyncio.get_running_loop().time() < deadline, f"{POINT} never fired"
        await asyncio.sleep(0.1)
    await p.services.wait_ready("trainer")

    conn = await asyncpg.connect(p.db_url)
    try:
        deadline = asyncio.get_running_loop().time() + 150  # the redelivery waits ack_wait
        while True:
            status = await conn.fetchval(
                "SELECT status::text FROM generations WHERE id = $1", generation_id
            )
            if status == "completed" and photos_sent(p, uid):
                break
            assert asyncio.get_running_loop().time() < deadline, f"still {status}"
            await asyncio.sleep(0.5)
        ledger = await conn.fetch(
            "SELECT kind::text, amount FROM credit_entries WHERE user_id = $1"
            " AND kind IN ('generation_charge', 'refund') ORDER BY seq",
            uid,
        )
        images = await conn.fetchval(
            "SELECT count(*) FROM generated_images WHERE generation_id = $1", generation_id
        )
        state = await conn.fetchval(
            "SELECT state::text FROM fal_submissions WHERE idempotency_key = $1",
            f"generation:{generation_id}",
        )
    finally:
        await conn.close()
    assert p.services.exits[exits_before:] == [("trainer", 137)]
    assert fal_jobs_per_key(p.fal)[f"generation:{generation_id}"] == 1  # never submitted again
    assert [(r["kind"], r["amount"]) for r in ledger] == [("generation_charge", -PRICE)]
    assert images == 1
    assert state == "submitted"
    (sent,) = photos_sent(p, uid)
    assert "redrawn with your avatar" in (sent.get("caption") or "")
    trainer_log = (p.services.log_dir / "trainer.log").read_text(errors="replace")
    assert "adopted orphan generation job" in trainer_log  # from its webhook, not resubmitted
    await drained(p.db_url, p.js, p.dead_letters)
