"""An animation through crashes and a vanished picture, on the real services.

The trainer dies (exit 137) right after FAL accepted an animation, before the ledger says
so: the restarted trainer adopts the job from its webhook, never submits nor charges again,
and the user gets one video, charged once. A picture deleted before the video model got it
fails the job in words, with the credits back (the failure is not the user's)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from contracts import AnimateSource, GenerationRequested, encode, utcnow
from contracts.jetstream import OBJ_IMAGES
from sandbox.fal.images import photo
from services.kit import credits
from tests.faults.conftest import Product
from tests.faults.flows import drained, fal_jobs_per_key
from tests.faults.test_generation_faults import final_status

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]
PRICE = 6
POINT = "trainer.after_generation_submit"


async def request_animation(
    p: Product, name: str, *, deleted: bool = False
) -> tuple[uuid.UUID, int]:
    """A user with credits and one stored picture, and an animation of it stored and
    requested as the bot does it (`deleted`: the picture is gone before the trainer runs)."""
    uid = int((await p.telegram.create_user(name, language_code="en"))["id"])
    image_id, object_name = uuid.uuid4(), f"gen/{uuid.uuid4()}/0.jpg"
    conn = await asyncpg.connect(p.db_url)
    try:
        await conn.execute(
            "INSERT INTO users (id, first_name, language) VALUES ($1, $2, 'en')", uid, name
        )
        async with conn.transaction():
            await credits.post(
                conn, user_id=uid, kind=credits.Kind.ADMIN_GRANT, amount=3 * PRICE,
                key=f"test-grant:{uid}",
            )  # fmt: skip
        source = await conn.fetchval(
            "INSERT INTO generations (user_id, prompt, aspect_ratio, num_images, seed, status)"
            " VALUES ($1, 'a lighthouse', '1:1', 1, 7, 'completed') RETURNING id", uid
        )  # fmt: skip
        if not deleted:
            await (await p.js.object_store(OBJ_IMAGES.name)).put(object_name, photo(1, (256, 256)))
            await conn.execute(
                "INSERT INTO generated_images (id, generation_id, user_id, position, object_name,"
                " width, height, content_type) VALUES ($1, $2, $3, 0, $4, 256, 256, 'image/jpeg')",
                image_id, source, uid, object_name,
            )  # fmt: skip
        generation_id = await conn.fetchval(
            "INSERT INTO generations (user_id, prompt, aspect_ratio, num_images, seed,"
            " source_image_id, animation_seconds) VALUES ($1, 'she smiles', '1:1', 1, 7, $2, 5)"
            " RETURNING id", uid, None if deleted else image_id
        )  # fmt: skip
    finally:
        await conn.close()
    picture = AnimateSource(
        image_id=str(image_id), object_name=object_name, width=256, height=256, seconds=5,
        motion_prompt="she smiles",
    )  # fmt: skip
    event = GenerationRequested(
        event_id=str(uuid.uuid4()), occurred_at=utcnow(), generation_id=str(generation_id),
        user_id=uid, avatar_id=None, prompt="she smiles", aspect_ratio="1:1", num_images=1,
        seed=7, credits=PRICE, animate=picture,
    )  # fmt: skip
    await p.js.publish(event.subject, encode(event), headers={"Nats-Msg-Id": event.event_id})
    return generation_id, uid


async def ledger(p: Product, generation_id: uuid.UUID) -> list[tuple[str, int]]:
    conn = await asyncpg.connect(p.db_url)
    try:
        rows = await conn.fetch(
            "SELECT kind::text AS kind, amount FROM credit_entries WHERE subject = $1 ORDER BY id",
            str(generation_id),
        )
    finally:
        await conn.close()
    return [(r["kind"], r["amount"]) for r in rows]


def told(p: Product, uid: int, key: str) -> list[dict]:
    return [
        r.message
        for r in p.telegram.world.messages.get(uid, {}).values()
        if r.outgoing and not r.deleted and key in r.message
    ]


@pytest.mark.timeout(150)
async def test_a_crash_after_fal_accepted_an_animation_loses_nothing_charges_once(
    shared: Product,
) -> None:
    p = shared
    await p.services.rearm("trainer", POINT)
    exits_before = len(p.services.exits)
    generation_id, uid = await request_animation(p, "Crash")
    deadline = asyncio.get_running_loop().time() + 30
    while p.services.crashed_at(POINT) == 0:
        assert asyncio.get_running_loop().time() < deadline, f"{POINT} never fired"
        await asyncio.sleep(0.1)
    await p.services.wait_ready("trainer")
    assert await final_status(p, generation_id, 100) == "completed"
    assert p.services.exits[exits_before:] == [("trainer", 137)]
    assert fal_jobs_per_key(p.fal)[f"generation:{generation_id}"] == 1
    assert await ledger(p, generation_id) == [("generation_charge", -PRICE)]
    conn = await asyncpg.connect(p.db_url)
    try:
        stored = await conn.fetchval(
            "SELECT content_type FROM generated_images WHERE generation_id = $1", generation_id
        )
    finally:
        await conn.close()
    assert stored == "video/mp4"

    async def one_video() -> bool:
        return len(told(p, uid, "video")) == 1

    deadline = asyncio.get_running_loop().time() + 20
    while not await one_video():
        assert asyncio.get_running_loop().time() < deadline, "the video never arrived"
        await asyncio.sleep(0.2)
    await drained(p.db_url, p.js, p.dead_letters)


@pytest.mark.timeout(90)
async def test_a_picture_deleted_before_the_video_model_got_it_is_refunded(
    shared: Product,
) -> None:
    p = shared
    generation_id, uid = await request_animation(p, "Gone", deleted=True)
    assert await final_status(p, generation_id, 45) == "failed"
    assert fal_jobs_per_key(p.fal)[f"generation:{generation_id}"] == 0
    deadline = asyncio.get_running_loop().time() + 20
    while (await ledger(p, generation_id))[-1:] != [("refund", PRICE)]:
        assert asyncio.get_running_loop().time() < deadline, await ledger(p, generation_id)
        await asyncio.sleep(0.2)
    assert await ledger(p, generation_id) == [("generation_charge", -PRICE), ("refund", PRICE)]
    texts = [str(m.get("text", "")) for m in told(p, uid, "text")]
    assert any("picture was deleted" in text for text in texts), texts
    await drained(p.db_url, p.js, p.dead_letters)
