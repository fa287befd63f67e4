"""kill -9 in the middle of a pack and of an upscale, at each service's dangerous moment.

Each scenario arms one crash point in one service (the shared product's watchdog restarts
it clean), then a user presses the tool's button in the chat. Whatever dies — the trainer
right after FAL accepted a picture job, status with the results copied but the outcome not
committed, the bot with the pictures sent but the delivery not recorded — every job ends,
FAL ran each at most once, the user was charged once, and the pictures reached the chat: at
most one of them twice (the documented bound of a crash between Telegram's answer and our
commit, `docs/reliability.md`).

The trainer's death kills the pack's other submits in flight with it: FAL may or may not
have them, and nothing can ask it. Those pictures wait for their webhook (the adopted one
arrives, the others cannot), then end failed and refunded one by one, the user told — never
submitted twice, never charged for.
"""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from services.kit import credits
from tests.botkit import bot_message, buttons, eventually, press
from tests.e2e.test_upscale_flow import factors_of, open_in_gallery, quick_pictures
from tests.faults.conftest import Product
from tests.faults.flows import drained, fal_jobs_per_key

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]

POINTS = [
    ("trainer.after_generation_submit", "trainer"),
    ("status.before_generation_finish_commit", "status"),
    ("bot.after_pictures_sent", "bot"),
]
PACK = "fantasy"  # four pictures
GRANT = 200


async def a_user(p: Product, name: str) -> int:
    """A user who started the bot and holds `GRANT` credits more than the trial."""
    uid = int((await p.telegram.create_user(name, language_code="en"))["id"])
    await p.telegram.send_command(uid, "start")
    await bot_message(p.telegram, uid)
    conn = await asyncpg.connect(p.db_url, server_settings={"role": "aisha_bot"})
    try:
        async with conn.transaction():
            await credits.post(
                conn, user_id=uid, kind=credits.Kind.ADMIN_GRANT, amount=GRANT,
                key=f"test-grant:{uid}",
            )  # fmt: skip
    finally:
        await conn.close()
    return uid


async def trained_avatar(p: Product, uid: int) -> None:
    """A finished portrait avatar with its LoRA at FAL, as training leaves it."""
    lora = p.fal.put_file(b"AISHA-LORA" * 64, "application/octet-stream", "lora.safetensors")
    conn = await asyncpg.connect(p.db_url)
    try:
        await conn.execute(
            "INSERT INTO avatars (user_id, name, gender, trigger_word, status, training_attempt,"
            " fal_status, diffusers_lora_file_url, training_finished_at) VALUES ($1, 'Ann',"
            " 'female', $2, 'completed', 1, 'COMPLETED', $3, now())",
            uid, f"tok{uuid.uuid4().hex[:8]}", lora,
        )  # fmt: skip
    finally:
        await conn.close()


async def ledger(p: Product, uid: int, after: int) -> list[tuple[str, int]]:
    conn = await asyncpg.connect(p.db_url)
    try:
        rows = await conn.fetch(
            "SELECT kind::text, amount FROM credit_entries WHERE user_id = $1 AND seq > $2"
            " ORDER BY seq", uid, after,
        )  # fmt: skip
        return [(r["kind"], r["amount"]) for r in rows]
    finally:
        await conn.close()


async def last_seq(p: Product, uid: int) -> int:
    conn = await asyncpg.connect(p.db_url)
    try:
        return int(
            await conn.fetchval("SELECT max(seq) FROM credit_entries WHERE user_id = $1", uid)
        )
    finally:
        await conn.close()


async def jobs_of(p: Product, uid: int, where: str) -> dict[str, str]:
    """The user's generations matching `where`: id → status."""
    conn = await asyncpg.connect(p.db_url)
    try:
        rows = await conn.fetch(
            f"SELECT id::text, status::text FROM generations WHERE user_id = $1 AND {where}", uid
        )
        return {r["id"]: r["status"] for r in rows}
    finally:
        await conn.close()


async def all_ended(p: Product, uid: int, where: str, count: int) -> dict[str, str]:
    async def done() -> dict[str, str] | None:
        jobs = await jobs_of(p, uid, where)
        finished = len(jobs) == count and set(jobs.values()) <= {"completed", "failed"}
        return jobs if finished else None

    found: dict[str, str] = await eventually(done, 90)
    return found


async def crash_fired(p: Product, point: str, service: str, before: tuple[int, int]) -> None:
    """The armed point fired once more than `before` (hits, exits) and the service is back."""
    hits_before, exits_before = before

    async def fired() -> bool:
        return p.services.crashed_at(point) > hits_before and p.services.alive(service)

    await eventually(fired, 60)
    await p.services.wait_ready(service)
    assert p.services.exits[exits_before:] == [(service, 137)]


def sent(p: Product, uid: int, kind: str) -> int:
    """Bot messages in the chat carrying a `kind` (photo, document), deleted or not."""
    return sum(
        1
        for r in p.telegram.world.messages.get(uid, {}).values()
        if r.outgoing and kind in r.message
    )


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("point", "service"), POINTS, ids=[p for p, _ in POINTS])
async def test_a_crash_in_the_middle_of_a_pack(shared: Product, point: str, service: str) -> None:
    p = shared
    uid = await a_user(p, "Packer")
    await trained_avatar(p, uid)
    photos_before, seq = sent(p, uid, "photo"), await last_seq(p, uid)
    await p.services.rearm(service, point)
    before = p.services.crashed_at(point), len(p.services.exits)

    await p.telegram.send_command(uid, "packs")
    listing = await bot_message(p.telegram, uid, button=f"pk:show:{PACK}")
    await press(p.telegram, uid, listing, f"pk:show:{PACK}")
    card = await bot_message(p.telegram, uid, button=f"pkgo:{PACK}:")
    await press(p.telegram, uid, card, f"pkgo:{PACK}:")

    await crash_fired(p, point, service, before)
    jobs = await all_ended(p, uid, "pack_order_id IS NOT NULL", 4)
    completed = [g for g, status in jobs.items() if status == "completed"]
    per_key = fal_jobs_per_key(p.fal)
    assert all(per_key[f"generation:{g}"] <= 1 for g in jobs)
    assert all(per_key[f"generation:{g}"] == 1 for g in completed)
    if point != "trainer.after_generation_submit":
        assert len(completed) == 4, jobs  # only the trainer's death leaves submits unknown
    assert completed, "not even the picture FAL had accepted was delivered"
    failed = len(jobs) - len(completed)

    async def settled() -> list[tuple[str, int]] | None:
        entries = await ledger(p, uid, seq)
        return entries if len(entries) == 1 + failed else None

    entries = await eventually(settled, 30)
    assert [k for k, _ in entries] == ["generation_charge"] + ["refund"] * failed, entries
    assert sum(a for _, a in entries[1:]) == -entries[0][1] * failed // 4

    async def delivered() -> bool:
        return sent(p, uid, "photo") - photos_before >= len(completed)

    await eventually(delivered, 60)
    assert sent(p, uid, "photo") - photos_before <= len(completed) + 1
    await drained(p.db_url, p.js, p.dead_letters)


@pytest.mark.timeout(180)
@pytest.mark.parametrize(("point", "service"), POINTS, ids=[p for p, _ in POINTS])
async def test_a_crash_in_the_middle_of_an_upscale(
    shared: Product, point: str, service: str
) -> None:
    p = shared
    uid = await a_user(p, "Upscaler")
    await quick_pictures(p.telegram, uid)
    picture = await open_in_gallery(p.telegram, uid, 1)
    choice = await factors_of(p.telegram, uid, picture)
    x2 = next(b["callback_data"] for b in buttons(choice) if b["callback_data"].endswith(":2"))
    documents_before, seq = sent(p, uid, "document"), await last_seq(p, uid)
    await p.services.rearm(service, point)
    before = p.services.crashed_at(point), len(p.services.exits)

    await p.telegram.press_button(uid, choice["message_id"], data=x2)

    await crash_fired(p, point, service, before)
    jobs = await all_ended(p, uid, "upscale_factor IS NOT NULL", 1)
    assert list(jobs.values()) == ["completed"]
    assert [fal_jobs_per_key(p.fal)[f"generation:{g}"] for g in jobs] == [1]
    entries = await ledger(p, uid, seq)
    assert [k for k, _ in entries] == ["generation_charge"], entries
    await bot_message(p.telegram, uid, text="Upscaled ×2", within=60)
    assert 1 <= sent(p, uid, "document") - documents_before <= 2
    await drained(p.db_url, p.js, p.dead_letters)
