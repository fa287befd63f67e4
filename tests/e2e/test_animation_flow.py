"""Animation end to end, on the whole product (`sandbox.stack.Stack`: embedded NATS and
Postgres, both emulators, the three services as processes, FAL's Kling image-to-video
emulated with real MP4 files).

A user makes two quick pictures, opens one in the gallery, presses "🎬 Animate", reads the
price, types a motion prompt and then presses the start button too: one job reaches FAL
with their words, it is charged once, and a new video message arrives whose file decodes to
a 5-second clip; the video sits in the gallery right after its picture and opens as a
video. Then the video model times out: the user reads it in words and the credits come back.
A picture deleted while its video is made still gets its video (FAL has its copy), charged
once. A balance too small is answered with the shop, and nothing is sent to FAL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from sandbox.fal.animator import FPS
from sandbox.stack import Stack
from sandbox.telegram import TelegramEmulator
from services.kit import credits
from tests.botkit import Json, bot_message, buttons, content, current, eventually, file_bytes, press
from tests.conftest import create_database
from tests.e2e.services import whole_product
from tests.e2e.test_credits_flow import balance, kinds, settles_at
from tests.e2e.test_product import rule_violations
from tests.e2e.test_upscale_flow import quick_pictures
from tests.sandbox.test_fal_animator import decoded

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
TRIAL, PRICE = 30, 6
ANIMATOR = "fal-ai/kling-video/v2.1/standard/image-to-video"
MOTION = "she turns to the camera and smiles"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def product(pg_admin_url, migrated_template, tmp_path_factory) -> AsyncIterator[Stack]:
    db_url = await create_database(pg_admin_url, template=migrated_template)
    prices = {"CREDITS_TRIAL": str(TRIAL), "CREDITS_PER_IMAGE": "1", "CREDITS_ANIMATION": "6"}
    async with whole_product(db_url, tmp_path_factory.mktemp("stack"), **prices) as stack:
        yield stack


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def db(product: Stack) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(product.db_url)  # type: ignore[attr-defined]
    yield conn
    await conn.close()


async def open_picture(emu: TelegramEmulator, uid: int, image_id: str) -> Json:
    """/gallery → that item: the photo (or video) with its buttons."""
    await emu.send_command(uid, "gallery")
    page = await bot_message(emu, uid, button=f"img:open:{image_id}")
    await emu.press_button(uid, page["message_id"], data=f"img:open:{image_id}")
    return await bot_message(emu, uid, button=f"img:fav:{image_id}")


async def offer_for(emu: TelegramEmulator, uid: int, image_id: str) -> Json:
    """Open the picture, press "🎬 Animate": the new message with the price and the button."""
    picture = await open_picture(emu, uid, image_id)
    await press(emu, uid, picture, f"an:menu:{image_id}")
    return await bot_message(emu, uid, text="Animate this picture", button=f"an:go:{image_id}")


async def pictures(db: asyncpg.Connection, uid: int) -> list[str]:
    rows = await db.fetch(
        "SELECT i.id::text FROM generated_images i JOIN generations g ON g.id = i.generation_id"
        " WHERE i.user_id = $1 AND g.source_image_id IS NULL AND NOT g.training_check"
        " ORDER BY i.position", uid
    )  # fmt: skip
    return [r["id"].replace("-", "") for r in rows]  # as in callback data


def animator_jobs(product: Stack) -> list[dict]:
    assert product.fal is not None
    return [job.arguments for job in product.fal.jobs if job.app_id == ANIMATOR]


@pytest.mark.timeout(300)
async def samples(port: int, family_name: str) -> dict[tuple[str, ...], float]:
    """One metric family's `_total` samples on a service's /metrics, by label values."""
    url = f"http://127.0.0.1:{port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    return {
        tuple(sample.labels.values()): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == family_name
        for sample in family.samples
        if sample.name.endswith("_total")
    }


async def test_animate_from_the_press_to_the_video_with_refunds(
    product: Stack, db: asyncpg.Connection
) -> None:
    emu, fal = product.telegram, product.fal
    assert emu is not None
    assert fal is not None
    uid = (await emu.create_user("Animator", language_code="en"))["id"]
    await quick_pictures(emu, uid)
    await settles_at(db, uid, TRIAL - 2)
    first, second = await pictures(db, uid)

    # The offer names the price; a motion prompt, then the start button: one job, one charge.
    offer = await offer_for(emu, uid, first)
    assert f"{PRICE} credits" in content(offer)
    await emu.send_text(uid, MOTION)
    await bot_message(emu, uid, text="Making a 5-second video")
    await press(emu, uid, offer, f"an:go:{first}")
    delivered = await bot_message(emu, uid, text="Your video is ready", within=90)
    video = delivered["video"]
    frames, seconds, stream = decoded(file_bytes(emu, video["file_id"]))
    assert (frames, "h264" in stream) == (5 * FPS, True)
    assert seconds == pytest.approx(5, abs=0.2)
    assert [job["prompt"] for job in animator_jobs(product)] == [MOTION]
    await settles_at(db, uid, TRIAL - 2 - PRICE)
    assert (await kinds(db, uid))[-1] == ("generation_charge", -PRICE)
    progress = ("Making a 5-second", "is animating your picture")

    async def progress_gone() -> bool:  # whichever showed the job, none outlives the video
        return not [m for m in await emu.bot_messages(uid) if content(m).startswith("🎬") and
                    any(p in content(m) for p in progress)]  # fmt: skip

    await eventually(progress_gone)

    # In the gallery the video comes right after its picture, marked, and opens as a video.
    await emu.send_command(uid, "gallery")
    page = await bot_message(emu, uid, text="🎬 5 s")
    opens = [
        b["callback_data"] for b in buttons(page) if b["callback_data"].startswith("img:open:")
    ]
    clip_id: str = await db.fetchval(
        "SELECT i.id::text FROM generated_images i JOIN generations g ON g.id = i.generation_id"
        " WHERE g.source_image_id = $1::uuid AND i.content_type = 'video/mp4'", first
    )  # fmt: skip
    clip_id = clip_id.replace("-", "")
    assert opens.index(f"img:open:{clip_id}") == opens.index(f"img:open:{first}") + 1
    opened = await open_picture(emu, uid, clip_id)
    assert opened["video"]["file_unique_id"] == video["file_unique_id"]
    assert not [b for b in buttons(opened) if b["callback_data"].startswith(("an:", "up:"))]

    # The video model times out (FAL's 504 `request_timeout`, after FAL's own retries; its
    # webhook names no error type): told in words, the credits come back.
    fal.add_fault(
        "job_failed", app_id=ANIMATOR, times=1, status=504, error_type="request_timeout",
        message="Request timed out",
    )  # fmt: skip
    offer = await offer_for(emu, uid, second)
    await press(emu, uid, offer, f"an:go:{second}")
    failed = await bot_message(emu, uid, text="The video model failed", within=90)
    assert "credits are back" in content(failed)
    await settles_at(db, uid, TRIAL - 2 - PRICE)
    assert [k for k, _ in await kinds(db, uid)][-2:] == ["generation_charge", "refund"]

    # The picture deleted while its video is made: FAL has its copy, the video comes.
    offer = await offer_for(emu, uid, second)
    await press(emu, uid, offer, f"an:go:{second}")
    await eventually(
        lambda: db.fetchval(
            "SELECT 1 FROM generations WHERE source_image_id = $1::uuid"
            " AND fal_request_id IS NOT NULL AND status = 'submitted'", second
        )
    )  # fmt: skip
    picture = await open_picture(emu, uid, second)
    await press(emu, uid, picture, f"img:del:{second}")

    async def confirm() -> Json | None:
        now = await current(emu, uid, picture["message_id"])
        return now if now and any("del_yes" in b["callback_data"] for b in buttons(now)) else None

    await press(emu, uid, await eventually(confirm), f"img:del_yes:{second}")

    async def deleted() -> bool:
        gone = await db.fetchval("SELECT count(*) FROM generated_images WHERE id = $1::uuid",
                                 second)  # fmt: skip
        return gone == 0

    await eventually(deleted)

    async def second_video() -> bool:
        messages = await emu.bot_messages(uid)
        return sum("video" in m and "ready" in content(m) for m in messages) == 2

    await eventually(second_video, within=90)
    await settles_at(db, uid, TRIAL - 2 - 2 * PRICE)
    assert len(animator_jobs(product)) == 3

    # A balance too small: the shop is offered and nothing reaches FAL.
    async with db.transaction():
        await credits.post(
            db, user_id=uid, kind=credits.Kind.ADMIN_GRANT, amount=-(await balance(db, uid)),
            key="test:drain-animation",
        )  # fmt: skip
    offer = await offer_for(emu, uid, first)
    await press(emu, uid, offer, f"an:go:{first}")
    await bot_message(emu, uid, text="Not enough credits", button="shop:")
    await asyncio.sleep(1)
    assert len(animator_jobs(product)) == 3
    assert await rule_violations(emu) == {}

    # The presses, charges, refunds and spend are counted under the animation's labels.
    ports = product.ports  # type: ignore[attr-defined]
    pressed = await samples(ports["bot"], "aisha_bot_animations_requested")
    assert pressed[("started",)] == 3
    assert pressed[("already_running",)] == 1
    assert pressed[("insufficient_credits",)] == 1
    refunds = await samples(ports["bot"], "aisha_bot_credit_refunds")
    assert refunds[("animation", "fal_error")] == 1
    charged = await samples(ports["trainer"], "aisha_trainer_credits_charged")
    assert charged[("animation",)] == 3 * PRICE
    spend = await samples(ports["trainer"], "aisha_trainer_estimated_spend_usd")
    assert spend[("animation",)] == pytest.approx(3 * 0.28)
    # What the daily spend limit sums (services/trainer/spend.py): each clip's FAL price.
    costs = await db.fetchval(
        "SELECT sum(cost_usd) FROM generations WHERE user_id = $1 AND animation_seconds = 5", uid
    )
    assert float(costs) == pytest.approx(3 * 0.28)
