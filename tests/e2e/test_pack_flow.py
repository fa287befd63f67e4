"""A pack on the whole product (`sandbox.stack.Stack`: embedded NATS and Postgres, both
emulators, the three services as processes): one press (pressed twice) charges the pack's
total once, the trainer submits one FAL job per style and charges nothing more, the
pictures arrive as they are made, and the picture FAL fails and the one it flags NSFW are
refunded, one credit each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from sandbox.stack import Stack
from tests.botkit import bot_message, eventually, press
from tests.conftest import create_database
from tests.e2e.services import whole_product
from tests.e2e.test_credits_flow import balance, kinds, settles_at
from tests.e2e.test_product import rule_violations

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
TRIAL = 10


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def product(pg_admin_url, migrated_template, tmp_path_factory) -> AsyncIterator[Stack]:
    db_url = await create_database(pg_admin_url, template=migrated_template)
    prices = {"CREDITS_TRIAL": str(TRIAL), "CREDITS_PER_IMAGE": "1"}
    async with whole_product(db_url, tmp_path_factory.mktemp("stack"), **prices) as stack:
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def db(product: Stack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(product.db_url)  # type: ignore[attr-defined]
    yield conn
    await conn.close()


async def test_a_pack_from_the_press_to_the_pictures_charged_once_and_refunded_per_picture(
    product: Stack, db: asyncpg.Connection
) -> None:
    emu, fal = product.telegram, product.fal
    assert emu is not None
    assert fal is not None
    uid = (await emu.create_user("Packer", language_code="en"))["id"]
    await emu.send_command(uid, "start")
    await settles_at(db, uid, TRIAL)
    lora_url = fal.put_file(b"AISHA-LORA" * 64, "application/octet-stream", "lora.safetensors")
    await db.execute(  # a trained avatar: the bot's columns and the LoRA status stored
        "INSERT INTO avatars (user_id, name, gender, trigger_word, status, training_attempt,"
        " fal_status, diffusers_lora_file_url, training_finished_at) VALUES ($1, 'Ann',"
        " 'female', 'TOKpack', 'completed', 1, 'COMPLETED', $2, now())",
        uid, lora_url,
    )  # fmt: skip
    fal.add_fault("job_failed", contains="medieval knight", times=1)
    fal.add_fault("nsfw", contains="astronaut", times=1)
    jobs_before = len(fal.jobs)

    menu = await bot_message(emu, uid, button="pk:list")
    await press(emu, uid, menu, "pk:list")
    listing = await bot_message(emu, uid, button="pk:show:fantasy")
    await press(emu, uid, listing, "pk:show:fantasy")
    card = await bot_message(emu, uid, text="4 pictures × 1 = 4 credits", button="pkgo:")
    await press(emu, uid, card, "pkgo:fantasy:")
    await press(emu, uid, card, "pkgo:fantasy:")  # pressed twice
    await bot_message(emu, uid, text="4 pictures are on their way")

    await bot_message(emu, uid, text="Elven ranger", within=60)
    await bot_message(emu, uid, text="Cyberpunk", within=60)
    await bot_message(emu, uid, text="credits are back for the pictures", within=60)
    await bot_message(emu, uid, text="credits are back on your balance (now", within=60)
    await settles_at(db, uid, TRIAL - 4 + 2, within=60)
    assert await kinds(db, uid) == [
        ("trial", TRIAL),
        ("generation_charge", -4),
        ("refund", 1),
        ("refund", 1),
    ]

    async def four_jobs() -> bool:
        return len(fal.jobs) - jobs_before == 4

    await eventually(four_jobs, 30)
    expected = {"elf": "completed", "cyberpunk": "completed", "astronaut": "completed",
                "knight": "failed"}  # fmt: skip

    async def statuses() -> dict[str, str]:
        rows = await db.fetch(
            "SELECT style_id, status::text FROM generations WHERE user_id = $1", uid
        )
        return {r["style_id"]: r["status"] for r in rows}

    async def ended() -> bool:  # a picture is recorded delivered just after it is sent
        return await statuses() == expected

    await eventually(ended, 30)
    assert await balance(db, uid) == TRIAL - 2
    assert await rule_violations(emu) == {}
