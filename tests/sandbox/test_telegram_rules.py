"""Telegram's rules in the emulator: markup, limits, flood control, blocking, faults."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from sandbox.telegram import Limits, TelegramEmulator
from sandbox.telegram.markup import MarkupError, parse_html

TOKEN = "987654321:AAH-rules_token"


@pytest.fixture
async def emu() -> AsyncIterator[TelegramEmulator]:
    emulator = TelegramEmulator(limits=Limits(global_rate=30, chat_rate=1, chat_burst=3))
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def bot(emu: TelegramEmulator) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url))
    yield Bot(TOKEN, session=session)
    await session.close()


@pytest.fixture
async def user_id(emu: TelegramEmulator) -> int:
    return int((await emu.create_user("Bob", language_code="en"))["id"])


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<b>bold <i>both</i></b> &lt;x&gt; &amp; &quot;", 'bold both <x> & "'),
        ('<a href="https://x.org/?a=1&amp;b=2">link</a>', "link"),
        ('<span class="tg-spoiler">s</span><tg-spoiler>t</tg-spoiler>', "st"),
        ('<pre><code class="language-python">x = 1</code></pre>', "x = 1"),
        ("<blockquote expandable>q</blockquote>&#128512;", "q😀"),
    ],
)
def test_valid_html(markup: str, text: str) -> None:
    assert parse_html(markup).text == text


def test_entities_offsets_are_utf16() -> None:
    parsed = parse_html("😀 <b>bold</b>")
    assert parsed.entities == [{"type": "bold", "offset": 3, "length": 4}]
    pre = parse_html('<pre><code class="language-py">x</code></pre>').entities
    assert pre == [{"type": "pre", "language": "py", "offset": 0, "length": 1}]


@pytest.mark.parametrize(
    "markup",
    [
        "<b>unclosed",
        "<b><i>bad</b></i>",
        "</b>",
        "<script>x</script>",
        "<div>x</div>",
        "a < b",
        "&nbsp;",
        '<span class="red">x</span>',
        "<a>no href</a>",
    ],
)
def test_invalid_html(markup: str) -> None:
    with pytest.raises(MarkupError):
        parse_html(markup)


async def test_bad_html_is_rejected_and_counted(
    bot: Bot, emu: TelegramEmulator, user_id: int
) -> None:
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(user_id, "<b>oops</i>", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(user_id, "<u>x", parse_mode="HTML")
    assert (await emu.violations())["html_invalid"] == 2
    assert (await emu.transcript(user_id))["messages"] == []
    sent = await bot.send_message(user_id, "<b>oops</i>")
    assert sent.text == "<b>oops</i>"


async def test_text_and_caption_limits(bot: Bot, emu: TelegramEmulator, user_id: int) -> None:
    await emu.set_limits(enabled=False)
    assert (await bot.send_message(user_id, "я" * 4096)).text == "я" * 4096
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(user_id, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(user_id, "   ")
    sent = await bot.send_message(user_id, "caption holder")
    with pytest.raises(TelegramBadRequest, match="there is no caption"):
        await bot.edit_message_caption(chat_id=user_id, message_id=sent.message_id, caption="c")
    violations = await emu.violations()
    assert violations["text_too_long"] == 1
    assert violations["text_empty"] == 1


async def test_callback_data_and_button_rules(
    bot: Bot, emu: TelegramEmulator, user_id: int
) -> None:
    long_data = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="d" * 65)]]
    )
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(user_id, "t", reply_markup=long_data)
    no_action = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="x")]])
    with pytest.raises(TelegramBadRequest, match="can't parse inline keyboard button"):
        await bot.send_message(user_id, "t", reply_markup=no_action)
    two_actions = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="a", url="https://a.b")]]
    )
    with pytest.raises(TelegramBadRequest, match="exactly one action"):
        await bot.send_message(user_id, "t", reply_markup=two_actions)
    ok = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="ж" * 32)]]
    )
    await bot.send_message(user_id, "t", reply_markup=ok)
    violations = await emu.violations()
    assert violations["callback_data_invalid"] == 1
    assert violations["button_invalid"] == 2


async def test_burst_to_one_chat_gets_retry_after(
    bot: Bot, emu: TelegramEmulator, user_id: int
) -> None:
    other = int((await emu.create_user("Carol"))["id"])
    for i in range(3):
        await bot.send_message(user_id, f"msg {i}")
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(user_id, "one too many")
    assert caught.value.retry_after >= 1
    assert "retry after" in caught.value.message
    await bot.send_message(other, "another chat is fine")
    assert (await emu.violations())["rate_limit_chat"] == 1
    assert len((await emu.transcript(user_id))["messages"]) == 3


async def test_global_rate_limit(bot: Bot, emu: TelegramEmulator) -> None:
    await emu.set_limits(global_rate=5, global_burst=5, chat_burst=10)
    users = [int((await emu.create_user(f"U{i}"))["id"]) for i in range(6)]
    for uid in users[:5]:
        await bot.send_message(uid, "hi")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(users[5], "hi")
    assert (await emu.violations())["rate_limit_global"] == 1


async def test_blocked_user_is_forbidden(bot: Bot, emu: TelegramEmulator, user_id: int) -> None:
    await emu.set_blocked(user_id, True)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(user_id, "hello?")
    updates = await bot.get_updates(timeout=0)
    member = updates[-1].my_chat_member
    assert member is not None
    assert member.new_chat_member.status == "kicked"
    await emu.set_blocked(user_id, False)
    assert (await bot.send_message(user_id, "welcome back")).text == "welcome back"
    assert (await emu.violations())["blocked_user"] == 1


async def test_injected_faults(bot: Bot, emu: TelegramEmulator, user_id: int) -> None:
    await emu.inject_fault("sendMessage", status=429, count=1, retry_after=7)
    await emu.inject_fault("getMe", status=500, count=2)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(user_id, "x")
    assert caught.value.retry_after == 7
    for _ in range(2):
        with pytest.raises(TelegramServerError):
            await bot.get_me()
    assert (await bot.get_me()).id == 987654321
    assert (await bot.send_message(user_id, "x")).text == "x"
    assert await emu.violations() == {}


async def test_wrong_token_is_unauthorized() -> None:
    async with TelegramEmulator(token="1:right") as emulator:
        session = AiohttpSession(api=TelegramAPIServer.from_base(emulator.base_url))
        try:
            with pytest.raises(Exception, match="Unauthorized"):
                await Bot("1:wrong", session=session).get_me()
            assert (await Bot("1:right", session=session).get_me()).id == 1
        finally:
            await session.close()


def test_the_default_limits_are_telegrams_strict_per_chat_ones() -> None:
    """Burst 3, then 1 a second per chat, edits counted: what a bot must live with."""
    limits = TelegramEmulator().world.limits
    assert (limits.enabled, limits.chat_burst, limits.chat_rate, limits.limit_edits) == (
        True,
        3.0,
        1.0,
        True,
    )


async def test_an_edit_spends_a_token_like_a_send(
    bot: Bot, emu: TelegramEmulator, user_id: int
) -> None:
    sent = await bot.send_message(user_id, "0%")
    await bot.edit_message_text("1%", chat_id=user_id, message_id=sent.message_id)
    await bot.edit_message_text("2%", chat_id=user_id, message_id=sent.message_id)
    with pytest.raises(TelegramRetryAfter):
        await bot.edit_message_text("3%", chat_id=user_id, message_id=sent.message_id)
    assert (await emu.violations())["rate_limit_chat"] == 1


async def test_notification_and_order_are_recorded(
    bot: Bot, emu: TelegramEmulator, user_id: int
) -> None:
    """What a phone would do with each message (sound or not), and where it sits."""
    quiet = await bot.send_message(user_id, "3 of 10", disable_notification=True)
    await emu.send_text(user_id, "hello")  # the user's message takes the next id
    loud = await bot.send_message(user_id, "ready")
    assert loud.message_id == quiet.message_id + 2
    entries = {e["message_id"]: e for e in (await emu.transcript(user_id))["messages"]}
    assert entries[quiet.message_id]["notified"] is False
    assert entries[loud.message_id]["notified"] is True
    assert emu.world.below(user_id, quiet.message_id) == 2
    assert emu.world.below(user_id, loud.message_id) == 0
