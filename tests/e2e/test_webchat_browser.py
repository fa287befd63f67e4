"""The web chat page driven by a real chromium against the emulator and an aiogram bot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command, CommandStart
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)
from PIL import Image
from playwright.async_api import async_playwright, expect

from sandbox.fal.animator import animate
from sandbox.fal.images import photo
from sandbox.telegram import TelegramEmulator

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "424242:AAH-browser"


def chromium_path() -> str:
    """Debian's chromium; its absence is a failure, not a skip."""
    assert Path(CHROMIUM).exists(), f"chromium is required at {CHROMIUM}"
    return CHROMIUM


def demo_router() -> Router:
    router = Router(name="demo")
    albums: dict[str, list[Message]] = {}

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Train avatar", callback_data="train")]]
        )
        await message.answer("Hello, <b>friend</b>!", parse_mode="HTML", reply_markup=markup)

    @router.callback_query(F.data == "train")
    async def train(query: CallbackQuery) -> None:
        assert isinstance(query.message, Message)
        await query.answer("Starting")
        await query.message.edit_text("Training: 100% done")

    @router.message(Command("video"))
    async def video(message: Message) -> None:
        clip, width, height = await asyncio.to_thread(animate, photo(2, (96, 128)), 96, 128, 5)
        await message.answer_video(
            BufferedInputFile(clip, "clip.mp4"), width=width, height=height, duration=5,
            caption="Your video",
        )  # fmt: skip

    @router.message(F.photo)
    async def photos(message: Message) -> None:
        group = message.media_group_id
        if group is None:
            await message.answer("Got 1 photo")
            return
        albums.setdefault(group, []).append(message)
        if len(albums[group]) > 1:
            return
        await asyncio.sleep(0.5)
        await message.answer(f"Got {len(albums.pop(group))} photos")

    return router


@pytest.fixture
async def running_bot() -> AsyncIterator[TelegramEmulator]:
    emulator = TelegramEmulator(bot_name="Aisha")
    await emulator.start()
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(emulator.base_url)))
    dp = Dispatcher()
    dp.include_router(demo_router())
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=1))
    try:
        yield emulator
    finally:
        await dp.stop_polling()
        await asyncio.wait_for(polling, 5)
        await emulator.stop()


@pytest.mark.browser
async def test_web_chat_start_button_edit_and_album(
    running_bot: TelegramEmulator, tmp_path: Path
) -> None:
    chromium = chromium_path()
    images = []
    for i, color in enumerate(("red", "green")):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (64, 48), color).save(path)
        images.append(str(path))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            page = await browser.new_page()
            page.set_default_timeout(10_000)
            await page.goto(running_bot.web_url)
            await page.fill("#name", "Tester")
            await page.select_option("#lang", "en")
            await page.click("#create")
            await expect(page.locator("#chat")).to_be_visible()

            await page.fill("#text", "/start")
            await page.click("#send")
            bot_bubble = page.locator(".bubble.bot").first
            await expect(bot_bubble).to_contain_text("Hello, friend!")
            await expect(bot_bubble.locator("b")).to_have_text("friend")

            await bot_bubble.get_by_role("button", name="Train avatar").click()
            await expect(bot_bubble).to_contain_text("Training: 100% done")
            await expect(bot_bubble).to_contain_text("edited")
            await expect(page.locator("#toast")).to_contain_text("Starting")

            await page.set_input_files("#photos", images)
            await expect(page.locator(".bubble.user img")).to_have_count(2)
            await expect(page.locator(".bubble.bot").last).to_contain_text("Got 2 photos")
            src = await page.locator(".bubble.user img").first.get_attribute("src")
            assert src is not None
            assert src.startswith("/_emu/files/")
        finally:
            await browser.close()

    users = list(running_bot.world.users.values())
    assert [u["first_name"] for u in users] == ["Tester"]
    transcript = await running_bot.transcript(users[0]["id"])
    texts = [e["message"].get("text") for e in transcript["messages"] if e["outgoing"]]
    assert texts == ["Training: 100% done", "Got 2 photos"]
    assert await running_bot.violations() == {}


@pytest.mark.browser
async def test_web_chat_plays_a_video(running_bot: TelegramEmulator) -> None:
    """A video message (an animation's, made like the FAL emulator makes them) shows as a
    player whose file the browser decodes: its duration is the clip's."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=ARGS)
        try:
            page = await browser.new_page()
            page.set_default_timeout(20_000)
            await page.goto(running_bot.web_url)
            await page.fill("#name", "Viewer")
            await page.click("#create")
            await expect(page.locator("#chat")).to_be_visible()
            await page.fill("#text", "/video")
            await page.click("#send")
            player = page.locator(".bubble.bot video")
            await expect(player).to_have_count(1)
            await expect(page.locator(".bubble.bot").last).to_contain_text("Your video")
            seconds = await player.evaluate(
                "v => new Promise((ok, bad) => { if (v.readyState >= 1) ok(v.duration);"
                " v.addEventListener('loadedmetadata', () => ok(v.duration));"
                " v.addEventListener('error', () => bad(String(v.error && v.error.code))); })"
            )
            assert seconds == pytest.approx(5, abs=0.3)
        finally:
            await browser.close()
