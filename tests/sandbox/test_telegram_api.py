"""The Telegram emulator driven by the real aiogram client over loopback HTTP."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaAudio,
    InputMediaDocument,
    InputMediaLivePhoto,
    InputMediaPhoto,
    InputMediaVideo,
)
from aiohttp import web
from PIL import Image

from sandbox.telegram import Limits, TelegramEmulator

TOKEN = "123456789:AAH-sandbox_token"
MediaItem = (
    InputMediaAudio | InputMediaDocument | InputMediaLivePhoto | InputMediaPhoto | InputMediaVideo
)


def png(width: int = 1200, height: int = 900, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=t, callback_data=d) for t, d in pairs]]
    )


@pytest.fixture
async def emu() -> AsyncIterator[TelegramEmulator]:
    emulator = TelegramEmulator(limits=Limits(enabled=False))
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def bot(emu: TelegramEmulator) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url))
    client = Bot(TOKEN, session=session)
    yield client
    await session.close()


@pytest.fixture
async def user_id(emu: TelegramEmulator) -> int:
    user = await emu.create_user("Aisha", username="aisha_user", language_code="ru")
    return int(user["id"])


async def test_get_me_uses_token_id_and_configured_username(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.id == 123456789
    assert me.is_bot
    assert me.username == "aisha_sandbox_bot"


async def test_send_message_with_keyboard_lands_in_transcript(
    bot: Bot, emu: TelegramEmulator, user_id: int
) -> None:
    sent = await bot.send_message(
        user_id, "<b>Hi</b> there", parse_mode="HTML", reply_markup=keyboard(("Go", "go:1"))
    )
    assert sent.text == "Hi there"
    assert sent.entities is not None
    assert sent.entities[0].type == "bold"
    assert sent.entities[0].length == 2
    assert sent.from_user is not None
    assert sent.from_user.id == 123456789
    assert sent.reply_markup is not None
    assert sent.reply_markup.inline_keyboard[0][0].callback_data == "go:1"
    transcript = await emu.transcript(user_id)
    [entry] = transcript["messages"]
    assert entry["outgoing"]
    assert entry["message"]["text"] == "Hi there"


async def test_unknown_chat_is_bad_request(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(42, "hello")


async def test_edits_keep_history_and_not_modified_is_rejected(
    bot: Bot, emu: TelegramEmulator, user_id: int
) -> None:
    sent = await bot.send_message(user_id, "Training: 0%", reply_markup=keyboard(("Stop", "s")))
    edited = await bot.edit_message_text(
        "Training: 50%",
        chat_id=user_id,
        message_id=sent.message_id,
        reply_markup=keyboard(("Stop", "s")),
    )
    assert not isinstance(edited, bool)
    assert edited.text == "Training: 50%"
    assert edited.edit_date is not None
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            "Training: 50%",
            chat_id=user_id,
            message_id=sent.message_id,
            reply_markup=keyboard(("Stop", "s")),
        )
    await bot.edit_message_reply_markup(chat_id=user_id, message_id=sent.message_id)
    [entry] = (await emu.transcript(user_id))["messages"]
    assert [m["text"] for m in entry["history"]] == ["Training: 0%", "Training: 50%"]
    assert "reply_markup" not in entry["message"]
    assert (await emu.violations())["not_modified"] == 1
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=user_id, message_id=999)


async def test_edit_caption_and_delete(bot: Bot, emu: TelegramEmulator, user_id: int) -> None:
    photo = await bot.send_photo(user_id, BufferedInputFile(png(), "a.png"), caption="old")
    edited = await bot.edit_message_caption(
        chat_id=user_id, message_id=photo.message_id, caption="<i>new</i>", parse_mode="HTML"
    )
    assert not isinstance(edited, bool)
    assert edited.caption == "new"
    assert await bot.delete_message(user_id, photo.message_id) is True
    [entry] = (await emu.transcript(user_id))["messages"]
    assert entry["deleted"] is True
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(user_id, photo.message_id)


async def test_send_photo_by_upload_file_id_and_url(
    bot: Bot, emu: TelegramEmulator, user_id: int
) -> None:
    data = png(1200, 900)
    first = await bot.send_photo(user_id, BufferedInputFile(data, "p.png"))
    assert first.photo is not None
    assert len(first.photo) == 4
    largest = first.photo[-1]
    assert (largest.width, largest.height) == (1200, 900)
    assert first.photo[0].width == 90
    again = await bot.send_photo(user_id, largest.file_id)
    assert again.photo is not None
    assert again.photo[-1].file_unique_id == largest.file_unique_id

    async def serve(_: web.Request) -> web.Response:
        return web.Response(body=png(64, 48, "blue"), content_type="image/png")

    app = web.Application()
    app.router.add_get("/img.png", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        by_url = await bot.send_photo(user_id, f"http://127.0.0.1:{port}/img.png")
    finally:
        await runner.cleanup()
    assert by_url.photo is not None
    assert (by_url.photo[-1].width, by_url.photo[-1].height) == (
        64,
        48,
    )
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        await bot.send_photo(user_id, "no-such-file-id")
    with pytest.raises(TelegramBadRequest, match="IMAGE_PROCESS_FAILED"):
        await bot.send_photo(user_id, BufferedInputFile(b"not an image", "x.png"))


async def test_media_group_sizes(bot: Bot, emu: TelegramEmulator, user_id: int) -> None:
    media: list[MediaItem] = [
        InputMediaPhoto(media=BufferedInputFile(png(40, 30), f"{i}.png"), caption=f"c{i}")
        for i in range(3)
    ]
    sent = await bot.send_media_group(user_id, media)
    assert len(sent) == 3
    assert len({m.media_group_id for m in sent}) == 1
    assert sent[0].media_group_id
    assert [m.caption for m in sent] == ["c0", "c1", "c2"]
    for count in (1, 11):
        assert sent[0].photo is not None
        file_id = sent[0].photo[-1].file_id
        items: list[MediaItem] = [InputMediaPhoto(media=file_id) for _ in range(count)]
        with pytest.raises(TelegramBadRequest, match="wrong number of media"):
            await bot.send_media_group(user_id, items)
    assert (await emu.violations())["media_group_size"] == 2


async def test_document_get_file_and_download(bot: Bot, user_id: int) -> None:
    sent = await bot.send_document(
        user_id, BufferedInputFile(b"%PDF-1.4 fake", "report.pdf"), caption="doc"
    )
    assert sent.document is not None
    assert sent.document.file_name == "report.pdf"
    assert sent.document.mime_type == "application/pdf"
    file = await bot.get_file(sent.document.file_id)
    assert file.file_path
    assert file.file_size == 13
    buf = await bot.download(file)
    assert buf is not None
    assert buf.read() == b"%PDF-1.4 fake"


async def test_send_video_upload_then_file_id(bot: Bot, user_id: int) -> None:
    clip = b"\x00\x00\x00\x18ftypmp42 fake clip"
    sent = await bot.send_video(
        user_id, BufferedInputFile(clip, "clip.mp4"), width=540, height=720, duration=5,
        caption="video", supports_streaming=True,
    )  # fmt: skip
    assert sent.video is not None
    assert (sent.video.width, sent.video.height, sent.video.duration) == (540, 720, 5)
    assert sent.video.mime_type == "video/mp4"
    assert sent.caption == "video"
    again = await bot.send_video(user_id, sent.video.file_id)
    assert again.video is not None
    assert again.video.file_unique_id == sent.video.file_unique_id
    buf = await bot.download(await bot.get_file(sent.video.file_id))
    assert buf is not None
    assert buf.read() == clip
    with pytest.raises(TelegramBadRequest):
        await bot.send_video(user_id, "no-such-file-id")


async def test_download_user_photo_largest_is_original(
    bot: Bot, emu: TelegramEmulator, user_id: int
) -> None:
    data = png(1000, 700, "green")
    message = await emu.send_photo(user_id, data)
    largest = message["photo"][-1]
    assert (largest["width"], largest["height"]) == (1000, 700)
    buf = await bot.download(largest["file_id"])
    assert buf is not None
    assert buf.read() == data


async def test_callback_query_answer_and_commands(
    bot: Bot, emu: TelegramEmulator, user_id: int
) -> None:
    sent = await bot.send_message(user_id, "Pick", reply_markup=keyboard(("A", "a"), ("B", "b")))
    query_id = await emu.press_button(user_id, sent.message_id, data="b")
    [update] = await bot.get_updates(timeout=1)
    assert update.callback_query is not None
    assert update.callback_query.data == "b"
    assert update.callback_query.id == query_id
    assert await bot.answer_callback_query(query_id, text="ok") is True
    answers = (await emu.transcript(user_id))["callback_answers"]
    assert answers[0]["answer"]["text"] == "ok"
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query_id, text="twice")
    commands = [
        BotCommand(command="start", description="Start"),
        BotCommand(command="help", description="Help"),
    ]
    assert await bot.set_my_commands(commands) is True
    assert [c.command for c in await bot.get_my_commands()] == ["start", "help"]


async def test_callback_answered_too_late(bot: Bot, emu: TelegramEmulator, user_id: int) -> None:
    await emu.set_limits(callback_timeout=0.05)
    sent = await bot.send_message(user_id, "Pick", reply_markup=keyboard(("A", "a")))
    query_id = await emu.press_button(user_id, sent.message_id, text="A")
    await asyncio.sleep(0.1)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query_id)
    assert (await emu.violations())["query_too_old"] == 1


async def test_get_updates_after_user_actions(
    bot: Bot, emu: TelegramEmulator, user_id: int
) -> None:
    waiter = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    await emu.send_command(user_id, "start", "ref42")
    updates = await asyncio.wait_for(waiter, 5)
    message = updates[0].message
    assert message is not None
    assert message.text == "/start ref42"
    assert message.entities is not None
    assert message.entities[0].type == "bot_command"
    assert message.from_user is not None
    assert message.from_user.language_code == "ru"
    await emu.send_album(user_id, [png(50, 50), png(60, 60)], caption="two")
    await emu.send_document(user_id, b"hello", "notes.txt")
    updates = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=1)
    assert len(updates) == 3
    groups = {u.message.media_group_id for u in updates[:2] if u.message}
    assert len(groups) == 1
    assert None not in groups
    last = updates[2].message
    assert last is not None
    assert last.document is not None
    assert last.document.mime_type == "text/plain"
    assert await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0) == []


async def test_send_chat_action_recorded(bot: Bot, emu: TelegramEmulator, user_id: int) -> None:
    assert await bot.send_chat_action(user_id, "upload_photo") is True
    assert (await emu.transcript(user_id))["last_action"]["action"] == "upload_photo"


async def test_webhook_push_with_secret(bot: Bot, emu: TelegramEmulator, user_id: int) -> None:
    received: list[tuple[str | None, dict[str, object]]] = []
    got = asyncio.Event()
    fail_first = [True]

    async def hook(request: web.Request) -> web.Response:
        if fail_first.pop() if fail_first else False:
            return web.Response(status=500)
        received.append(
            (request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json())
        )
        got.set()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret_token")
        with pytest.raises(Exception, match="webhook is active"):
            await bot.get_updates()
        await emu.send_text(user_id, "via webhook")
        await asyncio.wait_for(got.wait(), 5)
        info = await bot.get_webhook_info()
        assert info.url.endswith("/hook")
        assert info.last_error_message is not None
        assert "500" in info.last_error_message
        await bot.delete_webhook()
    finally:
        await runner.cleanup()
    secret, update = received[0]
    assert secret == "s3cret_token"
    assert update["message"]["text"] == "via webhook"  # type: ignore[index]
    assert (await bot.get_webhook_info()).url == ""
