"""One bot per module (real aiogram polling the emulator, real NATS and PostgreSQL), shared by
the module's cases, each with fresh users. `guard` is the promise every case keeps: no rule
of Telegram broken (invalid HTML, oversize data...) and no error logged."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from nats.js import JetStreamContext

from sandbox.telegram import Limits, TelegramEmulator
from tests.botkit import BotUnderTest, bot_config, jetstream, running_bot
from tests.conftest import create_database, drop_database
from tests.hostile.harness import ErrorLog

ADMIN_ID = 900_000_777


@pytest.fixture(scope="module")
def bot_overrides() -> dict[str, Any]:
    """BotConfig fields a module wants changed (override the fixture in the module)."""
    return {}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hostile_db(pg_admin_url: str, migrated_template: str) -> AsyncIterator[str]:
    url = await create_database(pg_admin_url, template=migrated_template)
    yield url
    await drop_database(pg_admin_url, url)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool(hostile_db: str) -> AsyncIterator[asyncpg.Pool]:
    """A superuser pool for seeding and inspecting (the bot runs as aisha_bot)."""
    created = await asyncpg.create_pool(hostile_db, min_size=1, max_size=3)
    assert created is not None
    yield created
    await created.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    async with jetstream(nats_url, provisioned=True) as context:
        yield context


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def emu() -> AsyncIterator[TelegramEmulator]:
    async with TelegramEmulator(limits=Limits(enabled=False)) as emulator:
        yield emulator


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(
    emu: TelegramEmulator, nats_url: str, hostile_db: str, bot_overrides: dict[str, Any]
) -> AsyncIterator[BotUnderTest]:
    fields: dict[str, Any] = {
        "telegram_bot_token": "123456:hostile-suite-token",
        "admin_ids": frozenset({ADMIN_ID}),
        "min_photos": 3,
        "max_photos": 5,
        "send_rate_chat": 100.0,
        "send_burst_chat": 50,
    }
    config = bot_config(emu, nats_url, hostile_db, **(fields | bot_overrides))
    async with running_bot(config) as task:
        yield task


@pytest.fixture(scope="module")
def errors() -> Iterator[ErrorLog]:
    handler = ErrorLog()
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


@pytest_asyncio.fixture(loop_scope="module")
async def guard(emu: TelegramEmulator, errors: ErrorLog, bot: BotUnderTest) -> AsyncIterator[None]:
    """After each case: no Telegram rule broken, nothing logged at ERROR. "Message is not
    modified" is Telegram's answer to an edit that changes nothing (a button pressed twice),
    which the bot must take as success; it is not a broken rule."""
    errors.records.clear()
    await emu.reset_violations()
    yield
    broken = {k: v for k, v in (await emu.violations()).items() if k != "not_modified"}
    assert broken == {}
    logged = errors.lines()
    assert not logged, "\n".join(logged)
