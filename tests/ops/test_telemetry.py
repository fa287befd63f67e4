"""The instruments themselves, each driven through the real thing it measures.

Telegram calls go through real aiogram to the Telegram emulator (429s, refusals), FAL calls
through the unmodified fal-client to the FAL emulator (5xx, 4xx), updates through a real
Dispatcher, and the in-flight gauges read a real migrated database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramServerError
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Chat, Message, Update, User
from fal_client.client import FalClientHTTPError

from sandbox.fal import FalEmulator
from sandbox.telegram import Limits, TelegramEmulator
from services.bot.app.bootstrap import build_bot
from services.bot.app.config import BotConfig
from services.bot.app.metrics import BotMetrics
from services.bot.app.telemetry import UpdateTelemetry
from services.kit.config import Env
from services.kit.falmetrics import CDN, ObservedFalClient
from services.status.inflight import InFlightGauges
from services.status.metrics import StatusMetrics


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator(limits=Limits(enabled=False)) as emu:
        yield emu


def _bot(emu: TelegramEmulator, metrics: BotMetrics) -> Bot:
    env = Env(
        {
            "TELEGRAM_BOT_TOKEN": "123456:telemetry-test",
            "TELEGRAM_API_URL": emu.base_url,
            "DATABASE_URL": "postgresql://u@localhost/db",
        }
    )
    return build_bot(BotConfig.from_env(env), metrics)


def calls(metrics: BotMetrics, method: str, outcome: str) -> float:
    labels = {"method": method, "outcome": outcome}
    return metrics.registry.get_sample_value("aisha_bot_telegram_requests_total", labels) or 0.0


async def test_a_429_that_is_retried_is_still_counted(emulator: TelegramEmulator) -> None:
    metrics = BotMetrics()
    user = await emulator.create_user("Ann")
    bot = _bot(emulator, metrics)
    try:
        await emulator.inject_fault("sendMessage", status=429, count=1, retry_after=1)
        message = await bot.send_message(user["id"], "hello")
    finally:
        await bot.session.close()
    assert message.text == "hello"
    assert calls(metrics, "sendMessage", "retry_after") == 1
    assert calls(metrics, "sendMessage", "ok") == 1
    timed = metrics.registry.get_sample_value(
        "aisha_bot_telegram_request_duration_seconds_count", {"method": "sendMessage"}
    )
    assert timed == 2


async def test_refusals_have_their_own_outcomes(emulator: TelegramEmulator) -> None:
    metrics = BotMetrics()
    user = await emulator.create_user("Ann")
    bot = _bot(emulator, metrics)
    try:
        sent = await bot.send_message(user["id"], "same")
        # The bot treats "not modified" as success (it may swallow the error); Telegram
        # still answered 400, and that is what the counter records.
        with contextlib.suppress(TelegramBadRequest):
            await bot.edit_message_text("same", chat_id=user["id"], message_id=sent.message_id)
        await emulator.inject_fault("sendMessage", status=500, count=1)
        with pytest.raises(TelegramServerError):
            await bot.send_message(user["id"], "boom")
        await emulator.set_blocked(user["id"], True)
        with pytest.raises(TelegramForbiddenError):
            await bot.send_message(user["id"], "are you there?")
    finally:
        await bot.session.close()
    assert calls(metrics, "editMessageText", "not_modified") == 1
    assert calls(metrics, "sendMessage", "server_error") == 1
    assert calls(metrics, "sendMessage", "forbidden") == 1
    assert calls(metrics, "sendMessage", "ok") == 1


async def test_updates_are_counted_by_type_and_outcome() -> None:
    metrics = BotMetrics()
    router = Router()

    async def ok(message: Message) -> None:
        return None

    async def boom(message: Message) -> None:
        raise RuntimeError("handler bug")

    router.message.register(ok, Command("ok"))
    router.message.register(boom, Command("boom"))
    dp = Dispatcher()
    dp.update.outer_middleware(UpdateTelemetry(metrics))
    dp.include_router(router)
    bot = Bot("123456:offline-test")
    user = User(id=5, is_bot=False, first_name="Ann")
    chat = Chat(id=5, type="private")
    now = dt.datetime.now(dt.UTC)

    def message(update_id: int, text: str) -> Update:
        msg = Message(message_id=update_id, date=now, chat=chat, from_user=user, text=text)
        return Update(update_id=update_id, message=msg)

    try:
        await dp.feed_update(bot, message(1, "/ok"))
        with pytest.raises(RuntimeError):
            await dp.feed_update(bot, message(2, "/boom"))
        press = CallbackQuery(id="q", from_user=user, chat_instance="c", data="x")
        await dp.feed_update(bot, Update(update_id=3, callback_query=press))
    finally:
        await bot.session.close()

    def count(kind: str, outcome: str) -> float:
        labels = {"update_type": kind, "outcome": outcome}
        return metrics.registry.get_sample_value("aisha_bot_updates_total", labels) or 0.0

    assert count("message", "ok") == 1
    assert count("message", "error") == 1
    assert count("callback_query", "unhandled") == 1


async def test_fal_calls_are_counted_by_endpoint_and_outcome(monkeypatch) -> None:
    metrics = StatusMetrics()
    async with FalEmulator(training_seconds=0.2, generation_seconds=0.1) as fal:
        for key, value in fal.client_env().items():
            monkeypatch.setenv(key, value)
        client = ObservedFalClient(
            fal.client_env()["FAL_KEY"], metrics.fal_requests, metrics.fal_seconds
        )
        app = "fal-ai/flux-lora"
        fal.add_fault("http_error", op="submit", status=500, times=1)
        with pytest.raises(FalClientHTTPError) as refused:
            await client.submit(app, {"prompt": "a cat"})
        assert refused.value.status_code == 500
        handle = await client.submit(app, {"prompt": "a cat"})
        fal.add_fault("http_error", op="status", status=404, times=1)
        with pytest.raises(FalClientHTTPError) as missing:
            await client.status(app, handle.request_id)
        assert missing.value.status_code == 404
        await client.status(app, handle.request_id)
        url = await client.upload(b"zip bytes", "application/zip", "a.zip")
    assert url.startswith("https://")

    def count(endpoint: str, outcome: str) -> float:
        labels = {"endpoint": endpoint, "outcome": outcome}
        return metrics.registry.get_sample_value("aisha_status_fal_requests_total", labels) or 0

    assert count(app, "server_error") == 1
    assert count(app, "client_error") == 1
    assert count(app, "ok") == 2
    assert count(CDN, "ok") == 1
    timed = metrics.registry.get_sample_value(
        "aisha_status_fal_request_duration_seconds_count", {"operation": "submit"}
    )
    assert timed == 2


async def test_in_flight_gauges_show_a_stuck_training(db_url: str) -> None:
    metrics = StatusMetrics()
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("INSERT INTO users (id, first_name) VALUES (77, 'Ann')")
        avatar = await conn.fetchval(
            "INSERT INTO avatars (user_id, name, gender, training_type, trigger_word, status,"
            " fal_request_id, submitted_at) VALUES (77, 'A', 'female', 'portrait', 'TOK',"
            " 'training', $1, now() - interval '2 hours') RETURNING id",
            str(uuid.uuid4()),
        )
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=1)
        assert pool is not None
        try:
            gauges = InFlightGauges(pool, metrics)
            await gauges.refresh()
            in_flight = metrics.registry.get_sample_value
            assert in_flight("aisha_status_trainings_in_flight", {"training_type": "portrait"}) == 1
            assert in_flight("aisha_status_trainings_in_flight", {"training_type": "style"}) == 0
            oldest = in_flight("aisha_status_training_oldest_in_flight_seconds", {})
            assert oldest is not None
            assert 7190 < oldest < 7300
            await conn.execute(
                "UPDATE avatars SET training_finished_at = now() WHERE id = $1", avatar
            )
            await gauges.refresh()
            assert in_flight("aisha_status_trainings_in_flight", {"training_type": "portrait"}) == 0
            assert in_flight("aisha_status_training_oldest_in_flight_seconds", {}) == 0
        finally:
            await pool.close()
    finally:
        await conn.close()
