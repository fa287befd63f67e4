"""The whole product as `./scripts/run` starts it: a person creates avatars through the bot.

The launcher's `Stack` runs embedded NATS, migrations, both emulators and the three services
as processes. One user clicks through the web chat in a real chromium (portrait avatar, then
a pack and a video of one of its pictures); another, Russian-speaking, drives the Telegram
emulator's control API (style avatar). Both
reach a trained avatar whose 18 FAL fields hold the expected values.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from playwright.async_api import async_playwright, expect

from sandbox.stack import Stack
from tests import faces
from tests.conftest import create_database
from tests.e2e.services import whole_product
from tests.e2e.test_webchat_browser import ARGS, chromium_path

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


def photo(i: int) -> bytes:
    """A distinct real photo of one person (the photo gate refuses drawings)."""
    return faces.person(i % faces.DISTINCT)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def product(pg_admin_url, migrated_template, tmp_path_factory) -> AsyncIterator[Stack]:
    db_url = await create_database(pg_admin_url, template=migrated_template)
    state = tmp_path_factory.mktemp("stack")
    # Enough for the avatars below; the money flows have their own e2e (test_credits_flow).
    async with whole_product(db_url, state, training_seconds=3.0, CREDITS_TRIAL="200") as stack:
        yield stack


async def avatar_row(db_url: str, name: str) -> asyncpg.Record:
    conn = await asyncpg.connect(db_url)
    try:
        row = await conn.fetchrow("SELECT * FROM avatars WHERE name = $1", name)
    finally:
        await conn.close()
    assert row is not None
    return row


async def rule_violations(emu) -> dict[str, int]:
    """Broken Telegram rules, leaving out the two answers a bot is allowed to get and obey.

    A test user acts within milliseconds, so flood control (429 + retry_after) can happen;
    the bot waits and retries. "Message is not modified" is a no-op the sender treats as
    success. Everything else (bad HTML, long texts, bad buttons...) is a bug.
    """
    allowed = ("rate_limit_", "not_modified")
    return {k: v for k, v in (await emu.violations()).items() if not k.startswith(allowed)}


def assert_fal_fields(row: asyncpg.Record, training_type: str) -> None:
    assert row["training_type"] == training_type
    assert row["fal_request_id"]
    assert row["finetune_type"] == "lora"
    assert "attempt 1" in row["finetune_comment"]
    assert row["trigger_phrase"] == row["trigger_word"]
    assert row["steps"] == (2500 if training_type == "portrait" else 1000)
    assert row["webhook_url"].endswith(f"?key=training:{row['id']}:1")
    assert row["training_logs"] is not None or row["fal_status"] == "COMPLETED"
    assert row["training_error"] is None
    assert row["last_status_check"] is not None
    response = json.loads(row["fal_response_data"])  # FAL's whole answer: body, or status+result
    result = response["payload"] if "payload" in response else response["result"]
    assert result["diffusers_lora_file"]["url"] == row["diffusers_lora_file_url"]
    assert row["config_file_url"].startswith("https://")
    if training_type == "portrait":
        assert row["learning_rate"] == pytest.approx(0.00009)
        assert (row["subject_crop"], row["create_masks"], row["captioning"]) == (True, True, None)
        assert row["multiresolution_training"] is True
    else:
        assert row["learning_rate"] is None  # the fast trainer takes none: nothing recorded
        assert (row["subject_crop"], row["create_masks"], row["captioning"]) == (None, False, False)
        assert row["multiresolution_training"] is None
    assert row["lora_rank"] is None  # neither endpoint takes a rank


@pytest.mark.browser
async def test_a_person_creates_a_portrait_avatar_in_the_web_chat(product: Stack, tmp_path: Path):
    files = []
    for i in range(10):
        path = tmp_path / f"p{i}.jpg"
        path.write_bytes(photo(i))
        files.append(str(path))
    no_face = tmp_path / "coffee.jpg"
    no_face.write_bytes(faces.jpeg(faces.fit(faces.original(faces.NO_FACE[0]))))
    assert product.telegram is not None
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=ARGS)
        try:
            page = await browser.new_page()
            page.set_default_timeout(20_000)
            await page.goto(product.telegram.web_url)
            await page.fill("#name", "Tester")
            await page.select_option("#lang", "en")
            await page.click("#create")
            await page.fill("#text", "/start")
            await page.click("#send")
            await page.get_by_role("button", name="➕ Create avatar").last.click()
            await expect(page.locator(".bubble.bot").last).to_contain_text("How shall we call")
            await page.fill("#text", "Browser Ann")
            await page.click("#send")
            await expect(page.locator(".bubble.bot").last).to_contain_text("Training prices")
            await page.get_by_role("button", name="👤 Portrait", exact=True).last.click()
            await expect(page.locator(".bubble.bot").last).to_contain_text("Who is in the photos")
            await page.get_by_role("button", name="👩 Woman").last.click()
            await expect(page.locator(".bubble.bot").last).to_contain_text("send 10–20 photos")
            # The photo gate: a picture with no face is refused with its reason, shown on it.
            await page.set_input_files("#photos", [str(no_face)])
            await expect(page.locator(".bubble.bot").last).to_contain_text("no face found")
            await page.set_input_files("#photos", files)
            # ... and the set's check is summed up before any credit is spent.
            await expect(page.locator(".bubble.bot").last).to_contain_text("Photo check")
            start = page.get_by_role("button", name="🚀 Start training").last
            await start.click()
            # the confirmation card: one click on a quality preset starts the training
            await page.get_by_role("button", name="⭐ Quality · 50 cr. · ~20 min").last.click()
            await expect(page.locator(".bubble.bot").last).to_contain_text(
                "is ready", timeout=60_000
            )
            # ... after its likeness check: the two test portraits, shown with their scores.
            await expect(page.locator(".bubble.bot").last).to_contain_text("Likeness check")
            await expect(page.locator(".bubble.bot img")).to_have_count(2)
            # Credits: the shop from the menu, an invoice, the emulated Stars payment.
            await page.fill("#text", "/buy")
            await page.click("#send")
            await page.get_by_role("button", name="Starter: 20 credits · ⭐ 50").last.click()
            await page.get_by_role("button", name="Pay ⭐ 50").last.click()
            await expect(page.locator(".bubble.bot").last).to_contain_text("Payment received")
            # A pack: one press with the avatar, priced before it, the pictures as they come.
            await page.fill("#text", "/packs")
            await page.click("#send")
            await page.get_by_role("button", name="🐉 Fantasy · 4 pics", exact=False).last.click()
            await expect(page.locator(".bubble.bot").last).to_contain_text("= 4 credits")
            await page.get_by_role("button", name="▶️ Browser Ann — 4 credits").last.click()
            await expect(page.locator(".bubble.bot").last).to_contain_text("on their way")
            await expect(page.locator(".bubble.bot img")).to_have_count(6, timeout=60_000)
            # A video of one of them: from the gallery, priced in the offer, played back.
            await page.fill("#text", "/gallery")
            await page.click("#send")
            await page.get_by_role("button", name="1", exact=True).last.click()
            await page.get_by_role("button", name="🎬 Animate").last.click()
            await expect(page.locator(".bubble.bot").last).to_contain_text("25 credits")
            await page.get_by_role("button", name="▶️ Animate without a prompt · 25 credits").click()
            player = page.locator(".bubble.bot video")
            await expect(player).to_have_count(1, timeout=60_000)
            seconds = await player.evaluate(
                "v => new Promise((ok, bad) => { if (v.readyState >= 1) ok(v.duration);"
                " v.addEventListener('loadedmetadata', () => ok(v.duration));"
                " v.addEventListener('error', () => bad(String(v.error && v.error.code))); })"
            )
            assert seconds == pytest.approx(5, abs=0.3)
            await page.screenshot(path=str(tmp_path / "webchat.png"), full_page=True)
            shots = os.environ.get("AISHA_SCREENSHOT_DIR")
            if shots:
                await page.screenshot(path=f"{shots}/webchat.png", full_page=True)
        finally:
            await browser.close()
    row = await avatar_row(product.db_url, "Browser Ann")  # type: ignore[attr-defined]
    assert row["status"] == "completed"
    assert row["photo_count"] == 10
    assert_fal_fields(row, "portrait")
    assert await rule_violations(product.telegram) == {}


async def test_a_russian_user_trains_a_style_avatar(product: Stack):
    emu = product.telegram
    assert emu is not None
    user = await emu.create_user("Анна", language_code="ru")
    uid = user["id"]

    async def press(text: str) -> None:
        messages = await emu.bot_messages(uid)
        for message in reversed(messages):
            for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
                for button in row:
                    if button["text"] == text:
                        await emu.press_button(
                            uid, message["message_id"], data=button["callback_data"]
                        )
                        return
        raise AssertionError(f"no button {text!r} in {[m.get('text') for m in messages]}")

    async def last_text_contains(fragment: str, within: float = 10.0) -> None:
        def seen() -> bool:
            box = emu.world.messages.get(uid, {})
            return any(
                r.outgoing and fragment in (r.message.get("text") or "") for r in box.values()
            )

        await emu.wait_for(seen, within)

    await emu.send_command(uid, "start")
    await last_text_contains("Привет")
    await press("➕ Создать аватар")
    await last_text_contains("Как назовём")
    await emu.send_text(uid, "Стиль Анны")
    await last_text_contains("Выберите тип обучения")
    await press("🎨 Стиль")  # a style: never asked who is in the pictures
    await last_text_contains("картинок того образа")
    await emu.send_album(uid, [photo(100 + i) for i in range(10)])
    await last_text_contains("Можно начинать", within=20)
    await press("🚀 Начать обучение")
    await last_text_contains("Выберите качество")
    await press("⭐ Качество · 50 кр. · ~7 мин")
    await last_text_contains("готов!", within=60)
    texts = [m.get("text") or "" for m in await emu.bot_messages(uid)]
    assert not any("Кто на фотографиях" in t for t in texts)
    row = await avatar_row(product.db_url, "Стиль Анны")  # type: ignore[attr-defined]
    assert row["status"] == "completed"
    assert row["gender"] is None
    assert_fal_fields(row, "style")
    assert product.fal is not None  # what reached FAL: a style, masks and captioning off
    (job,) = [j for j in product.fal.jobs if j.request_id == row["fal_request_id"]]
    assert job.app_id == "fal-ai/flux-lora-fast-training"
    assert (job.arguments["is_style"], job.arguments["create_masks"]) == (True, False)
    assert job.arguments["trigger_word"] == row["trigger_word"]
    assert job.arguments["steps"] == 1000  # the quality preset
    assert "captioning" not in job.arguments
    assert "learning_rate" not in job.arguments
    texts = [m.get("text") or "" for m in await emu.bot_messages(uid)]
    assert not any("Traceback" in t or "Error" in t for t in texts)
    assert await rule_violations(emu) == {}


async def test_generation_with_a_trained_avatar_through_every_service(product: Stack):
    """Train a style avatar, then generate from a template: bot → trainer → FAL → status → bot,
    an album arrives, and "again" makes a new generation with a new seed."""
    from tests.botkit import (
        album_pictures,
        bot_message,
        eventually,
        open_generation_settings,
        press,
    )

    emu = product.telegram
    assert emu is not None
    uid = (await emu.create_user("Gen", language_code="en"))["id"]
    await emu.send_command(uid, "start")
    menu = await bot_message(emu, uid, button="menu:create")
    await press(emu, uid, menu, "menu:create")
    await bot_message(emu, uid, text="How shall we call")
    await emu.send_text(uid, "Gen Avatar")
    kinds = await bot_message(emu, uid, text="Choose the training type")
    style = [
        b for row in kinds["reply_markup"]["inline_keyboard"] for b in row if "Style" in b["text"]
    ]
    await press(emu, uid, kinds, style[0]["callback_data"])
    await emu.send_album(uid, [photo(200 + i) for i in range(10)])
    ready = await bot_message(emu, uid, text="You can start training now", within=30)
    start = [
        b for row in ready["reply_markup"]["inline_keyboard"] for b in row if "Start" in b["text"]
    ]
    await press(emu, uid, ready, start[0]["callback_data"])
    card = await bot_message(emu, uid, text="Choose the quality", button="training:go")
    await press(emu, uid, card, "training:go")
    await bot_message(emu, uid, text="is ready", within=60)

    settings = await open_generation_settings(emu, uid)
    await press(emu, uid, settings, "gen:go")
    controls = await bot_message(emu, uid, text="Ready: 2 pictures", button="grun:again", within=60)
    album = await album_pictures(emu, uid)
    assert len(album) == 2
    assert album[0]["photo"][-1]["file_id"] != album[1]["photo"][-1]["file_id"]

    await press(emu, uid, controls, "grun:again")

    async def second_album() -> bool | None:
        photos = await album_pictures(emu, uid)
        return len(photos) >= 4 or None

    await eventually(second_album, 60)
    conn = await asyncpg.connect(product.db_url)  # type: ignore[attr-defined]

    async def both_completed() -> list[asyncpg.Record] | None:
        rows = await conn.fetch(
            "SELECT g.seed, g.parent_id, g.status::text, g.fal_endpoint FROM generations g"
            " WHERE g.user_id = $1 AND NOT g.training_check ORDER BY g.created_at",
            uid,
        )
        done = len(rows) == 2 and all(r["status"] == "completed" for r in rows)
        return rows if done else None

    try:
        rows = await eventually(both_completed, 20)
        images = await conn.fetchval(
            "SELECT count(*) FROM generated_images i JOIN generations g ON g.id = i.generation_id"
            " WHERE i.user_id = $1 AND i.telegram_file_id IS NOT NULL AND NOT g.training_check",
            uid,
        )
    finally:
        await conn.close()
    assert [r["status"] for r in rows] == ["completed", "completed"]
    assert rows[1]["seed"] != rows[0]["seed"]
    assert rows[1]["parent_id"] is not None
    assert {r["fal_endpoint"] for r in rows} == {"fal-ai/flux-lora"}
    assert images == 4
    assert await rule_violations(emu) == {}
