"""The bot's sender under each answer Telegram may give where its docs are silent.

The Telegram emulator's *assumed* behaviours (sandbox/telegram/README.md, "Documented or
assumed") are switches; this runs the product's one outgoing path (`Sender`, real aiogram,
real HTTP) both ways for each that changes what the bot sees: whether an edit that changes
nothing is a 400 "message is not modified" or a success, how strict the per-chat flood
limit is (stricter than the sender's own 1/s with a burst of 3, or off), and whether edits
count toward it. Whatever the answer, every message arrives, in order, and an edit is done.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from sandbox.telegram import Limits, TelegramEmulator
from services.bot.app.sender import Sender


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator(limits=Limits(enabled=False)) as emulator:
        yield emulator


@pytest.fixture
async def bot(telegram: TelegramEmulator) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.base_url))
    bot = Bot("123456:alternatives-token", session=session)
    yield bot
    await bot.session.close()


@pytest.fixture
async def sender(bot: Bot) -> AsyncIterator[Sender]:
    sender = Sender(bot)
    yield sender
    await sender.close(grace=2.0)


@pytest.mark.parametrize("not_modified", [True, False])
async def test_an_edit_that_changes_nothing_is_done_either_way(
    telegram: TelegramEmulator, bot: Bot, sender: Sender, not_modified: bool
) -> None:
    await telegram.set_limits(not_modified=not_modified)
    user = await telegram.create_user("Ann")
    sent = await sender.send(user["id"], "Training: 40%")
    assert sent is not None
    assert await sender.edit(user["id"], sent.message_id, "Training: 50%")
    # Another bot process (a redelivered event after a restart) shows the same state again:
    # its sender does not know what the message shows, so Telegram sees the same edit.
    other = Sender(bot)
    try:
        assert await other.edit(user["id"], sent.message_id, "Training: 50%")
    finally:
        await other.close(grace=2.0)
    [shown] = await telegram.bot_messages(user["id"])
    assert shown["text"] == "Training: 50%"
    assert (await telegram.violations()).get("not_modified", 0) == int(not_modified)


@pytest.mark.parametrize(
    "limits",
    [
        {"enabled": True, "chat_rate": 1.0, "chat_burst": 1.0},  # stricter than the sender
        {"enabled": True, "chat_rate": 1.0, "chat_burst": 3.0},  # the emulator's default
        {"enabled": False},  # no per-chat limit at all
    ],
    ids=["strict", "default", "none"],
)
async def test_every_message_arrives_in_order_whatever_the_chat_limit(
    telegram: TelegramEmulator, sender: Sender, limits: dict[str, Any]
) -> None:
    await telegram.set_limits(**limits)
    user = await telegram.create_user("Bob")
    texts = [f"update {i}" for i in range(4)]
    for text in texts:
        assert await sender.send(user["id"], text) is not None
    shown = [m["text"] for m in await telegram.bot_messages(user["id"])]
    assert shown == texts
    flooded = (await telegram.violations()).get("rate_limit_chat", 0)
    if limits.get("chat_burst") == 1.0:
        assert flooded >= 1  # the alternative really answered 429 and it was honoured
    elif not limits["enabled"]:
        assert flooded == 0


@pytest.mark.parametrize("limit_edits", [True, False])
async def test_a_stream_of_edits_ends_on_the_last_state(
    telegram: TelegramEmulator, sender: Sender, limit_edits: bool
) -> None:
    await telegram.set_limits(enabled=True, chat_rate=1.0, chat_burst=1.0, limit_edits=limit_edits)
    user = await telegram.create_user("Cy")
    sent = await sender.send(user["id"], "0%")
    assert sent is not None
    pending = [
        sender.enqueue_edit(user["id"], sent.message_id, f"{p}%") for p in (10, 20, 30, 40, 100)
    ]
    for future in pending:
        await future
    [shown] = await telegram.bot_messages(user["id"])
    assert shown["text"] == "100%"
