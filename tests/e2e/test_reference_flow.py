"""Your photo as a reference, end to end on the whole product (`sandbox.stack.Stack`:
embedded NATS and Postgres, both emulators, the three services as processes, FAL's
`flux-lora/image-to-image` emulated with real pictures, real aiogram and fal-client).

A user with a ready avatar presses "🖼 My photo as a reference" on its screen. A PDF, a GIF
and a 65-megapixel PNG are each refused in words, with nothing stored, charged or sent to
FAL. A real photo is accepted, the three strengths show their price, a double press starts
one job charged once, and the picture arrives at the photo's size, drawn with the avatar's
LoRA at the chosen strength. Then a FAL failure and an NSFW-flagged result are each told
and refunded, and a balance too small is answered with the shop — nothing sent to FAL.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from PIL import Image

from sandbox.fal.images import photo
from sandbox.stack import Stack
from sandbox.telegram import TelegramEmulator
from services.kit import credits
from tests.botkit import Json, bot_message, buttons, content, file_bytes, press
from tests.conftest import create_database
from tests.e2e.services import whole_product
from tests.e2e.test_credits_flow import balance, kinds, settles_at
from tests.e2e.test_product import rule_violations

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
TRIAL, PRICE = 30, 3
I2I = "fal-ai/flux-lora/image-to-image"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def product(pg_admin_url, migrated_template, tmp_path_factory) -> AsyncIterator[Stack]:
    db_url = await create_database(pg_admin_url, template=migrated_template)
    prices = {"CREDITS_TRIAL": str(TRIAL), "CREDITS_REFERENCE": str(PRICE)}
    async with whole_product(db_url, tmp_path_factory.mktemp("stack"), **prices) as stack:
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def db(product: Stack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(product.db_url)  # type: ignore[attr-defined]
    yield conn
    await conn.close()


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


async def to_the_avatar(emu: TelegramEmulator, uid: int) -> Json:
    """/start → My avatars → the avatar: its screen with the reference button."""
    await emu.send_command(uid, "start")
    menu = await bot_message(emu, uid, button="menu:avatars")
    await press(emu, uid, menu, "menu:avatars")
    listing = await bot_message(emu, uid, button="avatar:view:")
    await press(emu, uid, listing, "avatar:view:")
    found: Json = await bot_message(emu, uid, button="ref:ask:")
    return found


def i2i_jobs(product: Stack) -> list:
    assert product.fal is not None
    return [job for job in product.fal.jobs if job.app_id == I2I]


async def test_a_reference_photo_redrawn_charged_once_and_failures_refunded(
    product: Stack, db: asyncpg.Connection
) -> None:
    emu, fal = product.telegram, product.fal
    assert emu is not None
    assert fal is not None
    uid = (await emu.create_user("Referrer", language_code="en"))["id"]
    await emu.send_command(uid, "start")
    await settles_at(db, uid, TRIAL)
    lora_url = fal.put_file(b"AISHA-LORA" * 64, "application/octet-stream", "lora.safetensors")
    await db.execute(  # a trained avatar: the bot's columns and the LoRA status stored
        "INSERT INTO avatars (user_id, name, gender, trigger_word, status, training_attempt,"
        " fal_status, diffusers_lora_file_url, training_finished_at) VALUES ($1, 'Ann',"
        " 'female', 'TOKref', 'completed', 1, 'COMPLETED', $2, now())",
        uid, lora_url,
    )  # fmt: skip
    details = await to_the_avatar(emu, uid)
    await press(emu, uid, details, "ref:ask:")
    await bot_message(emu, uid, text="up to 20 MB and 64 megapixels")

    # Bad input: each told in words; nothing stored, charged or sent to FAL.
    await emu.send_document(uid, b"%PDF-1.4 a contract", "contract.pdf", "application/pdf")
    await bot_message(emu, uid, text="This is not an image")
    frames = [Image.new("RGB", (300, 300), c) for c in ("red", "blue")]
    gif = _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    await emu.send_document(uid, gif, "dance.gif", "image/gif")
    await bot_message(emu, uid, text="Animated pictures")
    huge = _encoded(Image.new("L", (8100, 8100)), "PNG")
    await emu.send_document(uid, huge, "huge.png", "image/png")
    await bot_message(emu, uid, text="over 64 megapixels")
    assert await db.fetchval("SELECT count(*) FROM reference_photos WHERE user_id = $1", uid) == 0
    assert await balance(db, uid) == TRIAL
    assert i2i_jobs(product) == []

    # A real photo: three strengths with the price; a double press → one job, one charge.
    await emu.send_photo(uid, photo(5, (800, 600)))
    choice = await bot_message(emu, uid, text="Photo received", button="ref:go:")
    labels = [b["text"] for b in buttons(choice)]
    assert labels[:3] == [
        f"🎯 Keep the composition · {PRICE} credits",
        f"⚖️ Balanced · {PRICE} credits",
        f"🎨 Free · {PRICE} credits",
    ]
    stored = await db.fetchrow(
        "SELECT id::text, object_name, width, height FROM reference_photos WHERE user_id = $1",
        uid,
    )
    assert stored["object_name"].startswith(f"references/{uid}/")
    go = f"ref:go:{uuid.UUID(stored['id']).hex}:"  # aiogram packs a UUID as its hex
    keep = f"{go}1"
    await press(emu, uid, choice, keep)
    await press(emu, uid, choice, keep)  # pressed twice
    delivered = await bot_message(emu, uid, text="redrawn with your avatar", within=60)
    picture = file_bytes(emu, delivered["photo"][-1]["file_id"])
    with Image.open(io.BytesIO(picture)) as image:
        assert image.size == (stored["width"], stored["height"]) == (800, 600)
    (job,) = i2i_jobs(product)
    assert job.arguments["strength"] == 0.75
    assert job.arguments["loras"][0]["path"] == lora_url
    assert "TOKref woman" in job.arguments["prompt"]
    await settles_at(db, uid, TRIAL - PRICE)
    assert (await kinds(db, uid))[-1] == ("generation_charge", -PRICE)
    assert await db.fetchval(
        "SELECT count(*) FROM generated_images i JOIN generations g ON g.id = i.generation_id"
        " WHERE g.user_id = $1 AND g.reference_id = $2::uuid", uid, stored["id"]
    ) == 1  # fmt: skip

    # FAL fails the job: told, and the credits come back.
    fal.add_fault("job_failed", app_id=I2I, times=1)
    await press(emu, uid, delivered, "ref:menu:")
    again = await bot_message(emu, uid, text="Photo received", button=f"{go}3")
    await press(emu, uid, again, f"{go}3")
    failed = await bot_message(emu, uid, text="The image service failed", within=60)
    assert "credits are back" in content(failed)
    await settles_at(db, uid, TRIAL - PRICE)
    assert [k for k, _ in await kinds(db, uid)][-2:] == ["generation_charge", "refund"]

    # The result is flagged NSFW: withheld (never sent), refunded whole.
    fal.add_fault("nsfw", app_id=I2I, times=1)
    await press(emu, uid, failed, "ref:menu:")
    again = await bot_message(emu, uid, text="Photo received", button=f"{go}2")
    photos_before = sum(1 for m in await emu.bot_messages(uid) if m.get("photo"))
    await press(emu, uid, again, f"{go}2")
    withheld = await bot_message(emu, uid, text="withheld by the content checks", within=60)
    assert "credits are back" in content(withheld)
    assert sum(1 for m in await emu.bot_messages(uid) if m.get("photo")) == photos_before
    await settles_at(db, uid, TRIAL - PRICE)
    assert len(i2i_jobs(product)) == 3

    # A balance too small: the price, the shop, and nothing reaches FAL.
    async with db.transaction():  # spent elsewhere: the ledger's own posting, a debit
        await credits.post(
            db, user_id=uid, kind=credits.Kind.ADMIN_GRANT, amount=-(await balance(db, uid)),
            key="test:drain",
        )  # fmt: skip
    await press(emu, uid, withheld, "ref:menu:")
    again = await bot_message(emu, uid, text="(balance 0)", button="ref:go:")
    await press(emu, uid, again, keep)
    await bot_message(emu, uid, text="Not enough credits", button="shop:")
    await asyncio.sleep(1)
    assert len(i2i_jobs(product)) == 3
    assert await rule_violations(emu) == {}
    statuses = await db.fetch(
        "SELECT status::text, reference_strength FROM generations WHERE user_id = $1"
        " ORDER BY created_at", uid
    )  # fmt: skip
    assert [(r["status"], round(r["reference_strength"], 2)) for r in statuses] == [
        ("completed", 0.75), ("failed", 0.95), ("completed", 0.85),
    ]  # fmt: skip
