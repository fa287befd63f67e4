"""Inline mode in the Telegram emulator, driven by the real aiogram client: a user's
`@bot words` becomes an inline_query update, `answerInlineQuery` is validated like
Telegram does, and a picked result lands in the chat via the bot."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BufferedInputFile,
    InlineQueryResultArticle,
    InlineQueryResultCachedPhoto,
    InlineQueryResultsButton,
    InputTextMessageContent,
)
from PIL import Image

from sandbox.telegram import Limits, TelegramEmulator

TOKEN = "424242:AAH-inline_token"


def jpeg(color: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (400, 300), color).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
async def emu() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator(limits=Limits(enabled=False)) as emulator:
        yield emulator


@pytest.fixture
async def bot(emu: TelegramEmulator) -> AsyncIterator[Bot]:
    client = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url)))
    yield client
    await client.session.close()


async def photo_file_id(bot: Bot, chat_id: int, color: str) -> str:
    sent = await bot.send_photo(chat_id, BufferedInputFile(jpeg(color), "p.jpg"))
    assert sent.photo
    return sent.photo[-1].file_id


async def next_inline_query_id(bot: Bot, offset: int | None = None) -> tuple[str, str, int]:
    updates = await bot.get_updates(offset=offset, timeout=2, allowed_updates=["inline_query"])
    [update] = [u for u in updates if u.inline_query is not None]
    assert update.inline_query is not None
    return update.inline_query.id, update.inline_query.query, update.update_id


async def test_inline_query_answer_and_choice(emu: TelegramEmulator, bot: Bot) -> None:
    me = await bot.get_me()
    assert me.supports_inline_queries
    uid = int((await emu.create_user("Inna"))["id"])
    red, blue = await photo_file_id(bot, uid, "red"), await photo_file_id(bot, uid, "blue")

    asked = emu.inline.query(uid, "sunset")
    query_id, text, _ = await next_inline_query_id(bot)
    assert (query_id, text) == (asked, "sunset")
    assert emu.inline.answer(asked) is None
    ok = await bot.answer_inline_query(
        query_id,
        [
            InlineQueryResultCachedPhoto(id="r1", photo_file_id=red),
            InlineQueryResultCachedPhoto(
                id="r2", photo_file_id=blue, caption="<b>blue</b>", parse_mode="HTML"
            ),
        ],
        is_personal=True,
        cache_time=5,
        next_offset="20",
    )
    assert ok
    answer = await emu.inline.wait_answer(asked)
    assert [r["id"] for r in answer["results"]] == ["r1", "r2"]
    assert (answer["is_personal"], answer["cache_time"], answer["next_offset"]) == (True, 5, "20")

    message = emu.inline.choose(uid, asked, "r2")
    assert message["via_bot"]["username"] == "aisha_sandbox_bot"
    assert message["photo"][-1]["file_id"] == blue
    transcript = await emu.transcript(uid)
    assert transcript["messages"][-1]["message"]["message_id"] == message["message_id"]
    assert not transcript["messages"][-1]["outgoing"]
    pending = await emu.pending_updates()
    assert [u for u in pending if "inline_query" not in u] == []  # a pick is no update
    assert await emu.violations() == {}


async def test_answer_rules_are_enforced(emu: TelegramEmulator, bot: Bot) -> None:
    uid = int((await emu.create_user("Rita"))["id"])
    good = await photo_file_id(bot, uid, "green")
    offset = None
    bad_answers = [
        [InlineQueryResultCachedPhoto(id="x", photo_file_id="AgACnot-a-file")],
        [
            InlineQueryResultCachedPhoto(id="same", photo_file_id=good),
            InlineQueryResultCachedPhoto(id="same", photo_file_id=good),
        ],
        [InlineQueryResultCachedPhoto(id=str(i), photo_file_id=good) for i in range(51)],
    ]
    for results in bad_answers:
        emu.inline.query(uid, "q")
        query_id, _, update_id = await next_inline_query_id(bot, offset)
        offset = update_id + 1
        with pytest.raises(TelegramBadRequest):
            await bot.answer_inline_query(query_id, results)  # type: ignore[arg-type]
    assert (await emu.violations())["inline_result_invalid"] == 2
    assert (await emu.violations())["inline_results_invalid"] == 1

    emu.inline.query(uid, "")
    query_id, _, update_id = await next_inline_query_id(bot, offset)
    button = InlineQueryResultsButton(text="Open", start_parameter="bad param!")
    with pytest.raises(TelegramBadRequest):
        await bot.answer_inline_query(query_id, [], button=button)
    assert (await emu.violations())["inline_button_invalid"] == 1
    button = InlineQueryResultsButton(text="Open the gallery", start_parameter="gallery")
    assert await bot.answer_inline_query(query_id, [], button=button, is_personal=True)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_inline_query(query_id, [])
    answer = emu.inline.answer(query_id)
    assert answer is not None
    assert answer["button"]["start_parameter"] == "gallery"


async def test_control_api_types_reads_and_picks(emu: TelegramEmulator, bot: Bot) -> None:
    uid = int((await emu.create_user("Web"))["id"])
    base = f"{emu.base_url}/_emu"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/users/{uid}/inline", json={"query": "cats"}) as resp:
            assert resp.status == 200
            query_id = (await resp.json())["inline_query_id"]
        async with http.get(f"{base}/inline/{query_id}") as resp:
            assert (await resp.json()) == {"answer": None}
        got, text, _ = await next_inline_query_id(bot)
        assert (got, text) == (query_id, "cats")
        article = InlineQueryResultArticle(
            id="a1", title="Cats", input_message_content=InputTextMessageContent(message_text="🐈")
        )
        await bot.answer_inline_query(query_id, [article])
        async with http.get(f"{base}/inline/{query_id}") as resp:
            assert (await resp.json())["answer"]["results"][0]["title"] == "Cats"
        choose = f"{base}/users/{uid}/inline/{query_id}/choose"
        async with http.post(choose, json={"result_id": "a1"}) as resp:
            assert (await resp.json())["text"] == "🐈"
        async with http.post(choose, json={"result_id": "nope"}) as resp:
            assert resp.status == 400
        async with http.post(f"{base}/users/999/inline", json={"query": "x"}) as resp:
            assert resp.status == 400
