"""Upscaling end to end, on the whole product (`sandbox.stack.Stack`: embedded NATS and
Postgres, both emulators, the three services as processes, FAL's `clarity-upscaler`
emulated with real pictures).

A user makes two quick pictures, opens one in the gallery and upscales it ×2 with a double
press: one job reaches FAL, it is charged once, and the result arrives as a document whose
picture is exactly twice the source's size — and it sits in the gallery right after its
source. Then the upscaler refuses a picture as too large: the user is told why in words and
the credits come back. A balance too small is answered with the shop, and nothing is sent.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from PIL import Image

from sandbox.stack import Stack
from sandbox.telegram import TelegramEmulator
from services.kit import credits
from tests.botkit import (
    Json,
    bot_message,
    buttons,
    content,
    current,
    eventually,
    file_bytes,
    has_button,
    press,
)
from tests.conftest import create_database
from tests.e2e.services import whole_product
from tests.e2e.test_credits_flow import balance, kinds, settles_at
from tests.e2e.test_product import rule_violations

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
TRIAL, X2, X4 = 30, 5, 20
UPSCALER = "fal-ai/clarity-upscaler"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def product(pg_admin_url, migrated_template, tmp_path_factory) -> AsyncIterator[Stack]:
    db_url = await create_database(pg_admin_url, template=migrated_template)
    prices = {
        "CREDITS_TRIAL": str(TRIAL),
        "CREDITS_PER_IMAGE": "1",
        "CREDITS_UPSCALE_2X": str(X2),
        "CREDITS_UPSCALE_4X": str(X4),
    }
    async with whole_product(db_url, tmp_path_factory.mktemp("stack"), **prices) as stack:
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def db(product: Stack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(product.db_url)  # type: ignore[attr-defined]
    yield conn
    await conn.close()


async def quick_pictures(emu: TelegramEmulator, uid: int) -> None:
    """/start → Generate → ⚡ quick → own text → Generate (2 square pictures, 2 credits)."""
    await emu.send_command(uid, "start")
    menu = await bot_message(emu, uid, button="gen:home")
    await press(emu, uid, menu, "gen:home")
    home = await bot_message(emu, uid, button="gen:quick")
    await press(emu, uid, home, "gen:quick")
    source = await bot_message(emu, uid, button="gen:own")
    await press(emu, uid, source, "gen:own")
    await asyncio.sleep(0.3)
    await emu.send_text(uid, "a lighthouse at dawn")
    settings = await bot_message(emu, uid, text="Pictures: 2", button="gen:go")
    await press(emu, uid, settings, "gen:go")
    await bot_message(emu, uid, text="Ready: 2 pictures", within=60)


async def open_in_gallery(emu: TelegramEmulator, uid: int, number: int) -> Json:
    """/gallery → the picture numbered `number`: the photo with its buttons."""
    await emu.send_command(uid, "gallery")
    page = await bot_message(emu, uid, button="img:open:")
    opens = [b for b in buttons(page) if b["callback_data"].startswith("img:open:")]
    data = opens[number - 1]["callback_data"]
    await emu.press_button(uid, page["message_id"], data=data)
    image_id = data.rsplit(":", 1)[-1]
    return await bot_message(emu, uid, button=f"up:menu:{image_id}")


async def factors_of(emu: TelegramEmulator, uid: int, picture: Json) -> Json:
    """Press "⬆️ Upscale" under `picture`; that very message with its ×2 / ×4 buttons."""
    await press(emu, uid, picture, "up:menu:")

    async def edited() -> Json | None:
        now = await current(emu, uid, picture["message_id"])
        return now if now is not None and has_button(now, "up:go:") else None

    found: Json = await eventually(edited)
    return found


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


async def test_upscale_double_press_document_and_refused_too_large(
    product: Stack, db: asyncpg.Connection
) -> None:
    emu, fal = product.telegram, product.fal
    assert emu is not None
    assert fal is not None
    uid = (await emu.create_user("Upscaler", language_code="en"))["id"]
    await quick_pictures(emu, uid)
    await settles_at(db, uid, TRIAL - 2)

    # ×2 with a double press: one job at FAL, charged once, a document twice the size.
    picture = await open_in_gallery(emu, uid, 1)
    source_id = next(
        b["callback_data"] for b in buttons(picture) if b["callback_data"].startswith("up:menu:")
    ).split(":")[2]
    source = await db.fetchrow("SELECT width, height FROM generated_images WHERE id = $1::uuid",
                               source_id)  # fmt: skip
    choice = await factors_of(emu, uid, picture)
    labels = [b["text"] for b in buttons(choice)]
    assert f"⬆️ ×2 · {X2} credits" in labels
    assert f"⬆️ ×4 · {X4} credits" in labels
    await press(emu, uid, choice, f"up:go:{source_id}:2")
    await press(emu, uid, choice, f"up:go:{source_id}:2")
    delivered = await bot_message(emu, uid, text="Upscaled ×2", within=60)
    document = delivered["document"]
    assert size_of(file_bytes(emu, document["file_id"])) == (
        source["width"] * 2,
        source["height"] * 2,
    )
    assert [job.arguments["upscale_factor"] for job in fal.jobs if job.app_id == UPSCALER] == [2]
    await settles_at(db, uid, TRIAL - 2 - X2)
    assert (await kinds(db, uid))[-1] == ("generation_charge", -X2)

    # The upscale sits in the gallery right after its source, marked.
    await emu.send_command(uid, "gallery")
    page = await bot_message(emu, uid, text="⬆️×2")
    lines = [line for line in content(page).splitlines() if line[:1].isdigit()]
    upscaled = next(n for n, line in enumerate(lines) if "⬆️×2" in line)
    assert upscaled > 0
    order = await db.fetch(
        "SELECT i.id::text FROM generated_images i JOIN generations g ON g.id = i.generation_id"
        " WHERE i.user_id = $1 AND g.upscale_factor IS NULL AND NOT g.training_check"
        " ORDER BY i.position", uid
    )  # fmt: skip
    assert len(order) == 2

    # Too large for the upscaler (its assumed limit lowered): told why, refunded.
    fal.configure(upscale_max_input_pixels=1000)
    other = await open_in_gallery(emu, uid, 3 if upscaled == 1 else 1)
    choice = await factors_of(emu, uid, other)
    await press(emu, uid, choice, "up:go:")
    refused = await bot_message(emu, uid, text="too large for ×2", within=60)
    assert "credits are back" in content(refused)
    await settles_at(db, uid, TRIAL - 2 - X2)
    assert [k for k, _ in await kinds(db, uid)][-2:] == ["generation_charge", "refund"]
    fal.configure(upscale_max_input_pixels=2048 * 2048)

    # A balance too small for ×4: the shop is offered and nothing reaches FAL.
    jobs = len(fal.jobs)
    async with db.transaction():  # spent elsewhere: the ledger's own posting, a debit
        await credits.post(
            db, user_id=uid, kind=credits.Kind.ADMIN_GRANT, amount=-(await balance(db, uid)),
            key="test:drain",
        )  # fmt: skip
    picture = await open_in_gallery(emu, uid, 1)
    choice = await factors_of(emu, uid, picture)
    x4 = next(b["callback_data"] for b in buttons(choice) if b["callback_data"].endswith(":4"))
    await press(emu, uid, choice, x4)
    await bot_message(emu, uid, text="Not enough credits", button="shop:")
    await asyncio.sleep(1)
    assert len(fal.jobs) == jobs
    assert await rule_violations(emu) == {}

    async def no_upscale_running() -> bool:
        running = await db.fetchval(
            "SELECT count(*) FROM generations WHERE user_id = $1 AND upscale_factor IS NOT NULL"
            " AND status IN ('pending', 'submitted')", uid
        )  # fmt: skip
        return running == 0

    await eventually(no_upscale_running)
