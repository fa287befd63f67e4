"""Flood control on direct Bot API calls: wait `retry_after`, try again, give up past a bound."""

from __future__ import annotations

import pytest
from aiogram.exceptions import TelegramRetryAfter

from sandbox.telegram import TelegramEmulator
from services.bot.app.bootstrap import build_bot
from services.bot.app.config import BotConfig
from services.kit.config import Env


@pytest.fixture
async def emulator():
    emu = TelegramEmulator()
    await emu.start()
    yield emu
    await emu.stop()


def _bot(emu: TelegramEmulator):
    env = Env(
        {
            "TELEGRAM_BOT_TOKEN": "123456:retry-test",
            "TELEGRAM_API_URL": emu.base_url,
            "DATABASE_URL": "postgresql://u@localhost/db",
        }
    )
    return build_bot(BotConfig.from_env(env))


async def test_a_429_is_waited_out_and_the_call_succeeds(emulator):
    user = await emulator.create_user("Ann")
    bot = _bot(emulator)
    try:
        await emulator.inject_fault("sendMessage", status=429, count=1, retry_after=1)
        message = await bot.send_message(user["id"], "hello")
    finally:
        await bot.session.close()
    assert message.text == "hello"
    texts = [m.get("text") for m in await emulator.bot_messages(user["id"])]
    assert texts == ["hello"]


async def test_persistent_flood_control_propagates(emulator):
    user = await emulator.create_user("Ann")
    bot = _bot(emulator)
    try:
        await emulator.inject_fault("sendMessage", status=429, count=5, retry_after=1)
        with pytest.raises(TelegramRetryAfter):
            await bot.send_message(user["id"], "hello")
    finally:
        await bot.session.close()
    assert await emulator.bot_messages(user["id"]) == []
