"""The bot service in this process against a Telegram emulator, and what the emulator gets.

The bot runs as `services.bot.app.bootstrap.run` in a task (its own NATS connection, pool,
HTTP port, consumer and long polling: everything but the process boundary), sharing the
harness's event loop with the emulator, so arrivals are timestamped where they happen.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable, Sequence
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from benchmarks.lab import Lab
from benchmarks.measure import BenchError, Stopwatch
from sandbox.telegram import Limits, TelegramEmulator
from sandbox.telegram.state import Json
from services.bot.app import bootstrap
from services.bot.app.config import BotConfig
from services.kit.config import CommonConfig

TOKEN = "7000000002:bench-token-not-a-secret"


def bot_config(lab: Lab, emu: TelegramEmulator, **overrides: Any) -> BotConfig:
    common = CommonConfig(
        service="bot",
        database_url=lab.db_url,
        nats_url=lab.nats_url,
        http_host="127.0.0.1",
        http_port=0,
        log_format="text",
        log_level="WARNING",
        shutdown_grace_seconds=5.0,
    )
    return BotConfig(
        common=common, telegram_bot_token=TOKEN, telegram_api_url=emu.base_url, **overrides
    )


def client(emu: TelegramEmulator) -> Bot:
    """An aiogram Bot for the harness's own setup calls and the no-op baselines."""
    return Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url)))


async def polling_started(emu: TelegramEmulator, task: asyncio.Task[Any] | None = None) -> None:
    """Until the emulator saw a getUpdates call (BenchError if `task` died first)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60.0
    while emu.world.stats["call:getUpdates"] < 1:
        if task is not None and task.done():
            raise BenchError(f"the bot stopped while starting: {task.exception()!r}")
        if loop.time() > deadline:
            raise BenchError("the bot did not start polling within 60s")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def polling_dispatcher(
    dp: Dispatcher, users: Sequence[int], name: str = "Bench"
) -> AsyncIterator[TelegramEmulator]:
    """A bare aiogram `dp` long-polling a fresh emulator (rate limits off) that knows `users`;
    yields the emulator once polling has started (the baselines' bots)."""
    async with TelegramEmulator(limits=Limits(enabled=False)) as emu:
        for uid in users:
            emu.users.create_user(name, user_id=uid)
        bot = client(emu)
        polling = asyncio.create_task(
            dp.start_polling(bot, handle_signals=False, close_bot_session=False)
        )
        try:
            await polling_started(emu, polling)
            yield emu
        finally:
            await dp.stop_polling()
            await polling
            await bot.session.close()


class RunningBot:
    """`async with RunningBot(config, emu):` — started, polling, then stopped cleanly."""

    def __init__(self, config: BotConfig, emu: TelegramEmulator):
        self._config = config
        self._emu = emu
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RunningBot:
        self._task = asyncio.create_task(bootstrap.run(self._config, self._stop))
        try:
            await polling_started(self._emu, self._task)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), 30.0)
            if not self._task.done():
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task


async def progress_messages(emu: TelegramEmulator, user_ids: Sequence[int]) -> list[int]:
    """Each user exists in the emulator with one bot message (a training's progress
    message); call with the emulator's rate limits off."""
    for uid in user_ids:
        emu.users.create_user("Bench", user_id=uid)
    bot = client(emu)
    ids: list[int] = []
    try:
        for start in range(0, len(user_ids), 50):
            chunk = user_ids[start : start + 50]
            sent = await asyncio.gather(*(bot.send_message(u, "⏳ Training…") for u in chunk))
            ids.extend(m.message_id for m in sent)
    finally:
        await bot.session.close()
    return ids


class Arrivals:
    """Stops a stopwatch key when a chat's live feed shows the bot's message or edit."""

    def __init__(self, emu: TelegramEmulator, stopwatch: Stopwatch):
        self._emu = emu
        self._stopwatch = stopwatch
        self._tasks: list[asyncio.Task[None]] = []

    def watch(self, chat_id: int, key: Hashable, kinds: tuple[str, ...] = ("edit",)) -> None:
        queue = self._emu.world.subscribe(chat_id)

        async def wait() -> None:
            try:
                while True:
                    event: Json | None = await queue.get()
                    if event is None:
                        return
                    entry = event.get("entry") or {}
                    if event["type"] in kinds and entry.get("outgoing", True):
                        self._stopwatch.stop(key)
                        return
            finally:
                self._emu.world.unsubscribe(chat_id, queue)

        self._tasks.append(asyncio.create_task(wait()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
