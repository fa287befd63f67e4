"""A real aiogram Dispatcher polling the emulator, and the HTTP control API."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from PIL import Image

from sandbox.telegram import TelegramEmulator

TOKEN = "555000111:AAH-dispatcher"


def echo_router() -> Router:
    router = Router(name="echo")

    @router.message(F.text)
    async def echo(message: Message) -> None:
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Like", callback_data="like")]]
        )
        await message.answer(f"echo: <b>{message.text}</b>", parse_mode="HTML", reply_markup=markup)

    @router.callback_query(F.data == "like")
    async def like(query: CallbackQuery) -> None:
        assert isinstance(query.message, Message)
        await query.message.edit_text("liked")
        await query.answer("thanks")

    return router


@pytest.fixture
async def emu() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator() as emulator:
        yield emulator


async def test_dispatcher_polls_echoes_and_handles_button(emu: TelegramEmulator) -> None:
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url)))
    dp = Dispatcher()
    dp.include_router(echo_router())
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=1))
    try:
        uid = int((await emu.create_user("Dina", language_code="en"))["id"])
        await emu.send_text(uid, "hello")
        [reply] = await emu.wait_bot_messages(uid, 1)
        assert reply["text"] == "echo: hello"
        assert reply["entities"][0]["type"] == "bold"
        await emu.press_button(uid, reply["message_id"], data="like")
        await emu.wait_for(
            lambda: any(c["answer"] for c in emu.world.transcript(uid)["callback_answers"])
        )
        transcript = await emu.transcript(uid)
    finally:
        await dp.stop_polling()
        await asyncio.wait_for(polling, 5)
    user_msg, bot_msg = transcript["messages"]
    assert not user_msg["outgoing"]
    assert user_msg["message"]["text"] == "hello"
    assert bot_msg["message"]["text"] == "liked"
    assert [h["text"] for h in bot_msg["history"]] == ["echo: hello"]
    assert transcript["callback_answers"][0]["answer"]["text"] == "thanks"
    assert await emu.violations() == {}
    assert await emu.pending_updates() == []


async def _next_event(lines: aiohttp.StreamReader) -> dict[str, object]:
    while True:
        line = (await lines.readline()).decode().strip()
        if line.startswith("data: "):
            event: dict[str, object] = json.loads(line[6:])
            return event


async def test_control_http_api_and_live_feed(emu: TelegramEmulator) -> None:
    base = f"{emu.base_url}/_emu"
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/users", json={"first_name": "Eve", "language_code": "ru"}
        ) as resp:
            user = await resp.json()
        uid = user["id"]
        async with http.get(f"{base}/chats/{uid}/events") as feed:
            snapshot = await asyncio.wait_for(_next_event(feed.content), 5)
            assert snapshot["type"] == "snapshot"
            async with http.post(f"{base}/users/{uid}/messages", json={"text": "/start"}) as r:
                assert r.status == 200
            event = await asyncio.wait_for(_next_event(feed.content), 5)
            assert event["type"] == "message"
            form = aiohttp.FormData()
            for color in ("red", "blue"):
                buf = io.BytesIO()
                Image.new("RGB", (30, 20), color).save(buf, "PNG")
                form.add_field(
                    "photo", buf.getvalue(), filename=f"{color}.png", content_type="image/png"
                )
            async with http.post(f"{base}/users/{uid}/photos", data=form) as r:
                album = await r.json()
            assert len(album) == 2
            assert album[0]["media_group_id"] == album[1]["media_group_id"]
            file_id = album[0]["photo"][-1]["file_id"]
            async with http.get(f"{base}/files/{file_id}") as r:
                assert r.content_type == "image/png"
                assert Image.open(io.BytesIO(await r.read())).size == (30, 20)
        async with http.post(
            f"{base}/users/{uid}/callback", json={"message_id": 1, "data": "x"}
        ) as r:
            assert r.status == 400
        async with http.post(f"{base}/faults", json={"method": "sendMessage", "status": 500}) as r:
            assert (await r.json())[0]["method"] == "sendMessage"
        async with http.post(f"{base}/limits", json={"chat_rate": 2}) as r:
            assert (await r.json())["chat_rate"] == 2.0
        async with http.get(f"{base}/chats/{uid}/transcript") as r:
            transcript = await r.json()
        assert len(transcript["messages"]) == 3
        async with http.get(f"{base}/violations") as r:
            assert (await r.json())["violations"] == {}
        async with http.get(f"{emu.web_url}") as r:
            assert r.status == 200
            assert "<title>" in await r.text()
    updates = await emu.pending_updates()
    assert [u["message"]["chat"]["id"] for u in updates] == [uid, uid, uid]


async def test_stop_wakes_long_poll() -> None:
    emulator = TelegramEmulator()
    await emulator.start()
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(emulator.base_url)))
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await asyncio.sleep(0.1)
    await asyncio.wait_for(emulator.stop(), 5)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(poll, 5)
    assert poll.done()
    await bot.session.close()


async def test_restarted_poller_causes_no_conflict(emu: TelegramEmulator) -> None:
    uid = int((await emu.create_user("Fay"))["id"])
    session = AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url))
    abandoned = asyncio.create_task(Bot(TOKEN, session=session).get_updates(timeout=30))
    await asyncio.sleep(0.1)
    abandoned.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await abandoned
    await session.close()
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url)))
    try:
        poll = asyncio.create_task(bot.get_updates(timeout=5))
        await asyncio.sleep(0.1)
        await emu.send_text(uid, "after restart")
        updates = await asyncio.wait_for(poll, 5)
        assert updates[0].message is not None
        assert updates[0].message.text == "after restart"
        second = asyncio.create_task(bot.get_updates(offset=updates[0].update_id + 1, timeout=5))
        await asyncio.sleep(0.1)
        with pytest.raises(Exception, match="terminated by other getUpdates"):
            await asyncio.gather(second, bot.get_updates(timeout=0))
    finally:
        await bot.session.close()
    assert (await emu.violations()) == {"getupdates_conflict": 1}
