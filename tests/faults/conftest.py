"""Fixtures of the fault suite: the whole product, on loopback only.

`shared` is one product for the scenarios that leave NATS and PostgreSQL alone (crash
points, random kills, FAL, Telegram, poison): its own NATS server (durable consumers are
shared by name, so JetStream state must not leak in from other tests), its own database
copied from the session's migrated template, the FAL and Telegram emulators and the
three services as processes. Starting the product is most of a scenario's cost (the bot
imports aiogram), so they share one and each counts only its own flows.
`product(...)` starts a private one for scenarios that restart NATS or PostgreSQL.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from sandbox.embedded import EmbeddedNats
from sandbox.fal import FalEmulator
from sandbox.fal.webhooks import Segmenting
from sandbox.stack import SANDBOX_TOKEN
from sandbox.telegram import TelegramEmulator
from services.kit.broker import provision
from tests.conftest import create_database
from tests.faults.flows import TRAINING_PRICE
from tests.faults.harness import Services

#: Emulated FAL: a 2 s training, webhook retries 0.5 s apart (FAL's are 7 s apart), each
#: webhook body sent in 256-byte segments 20 ms apart, as a real network may deliver it
#: (delivered in one piece, a receiver that verified a half-read body passed this suite).
WEBHOOK_SEGMENTING = Segmenting(size=256, pause_seconds=0.02)
FAL_OPTIONS: dict[str, Any] = {
    "training_seconds": 2.0,
    "queue_seconds": 0.2,
    "generation_seconds": 0.5,
    "webhook_backoff_seconds": 0.5,
    "concurrency": 8,
    "webhook_segmenting": WEBHOOK_SEGMENTING,
}
#: The shared product waits only 30 s for an orphan's webhook (90 min in production) so a
#: user whose attempt cannot be reconciled is told within the scenario (random kills); a
#: picture job the same after 15 s (10 min in production; the tool crash scenarios).
SHARED_ENV = {"TRAINER_RECONCILE_MINUTES": "0.5", "TRAINER_GENERATION_RECONCILE_SECONDS": "15"}


@dataclass
class Product:
    db_url: str
    nats: EmbeddedNats
    nc: NATS
    js: JetStreamContext
    fal: FalEmulator
    telegram: TelegramEmulator
    services: Services
    #: Messages scenarios dead-lettered on purpose (the poison scenario).
    dead_letters: int = 0


ProductFactory = Callable[..., contextlib.AbstractAsyncContextManager[Product]]


@contextlib.asynccontextmanager
async def running_product(
    state: Path,
    db_url: str,
    *,
    crash: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> AsyncIterator[Product]:
    """NATS, emulators and the three services on loopback; all stopped on exit."""
    async with contextlib.AsyncExitStack() as stack:
        server = EmbeddedNats(state / "nats").start()
        stack.callback(server.stop)
        fal = FalEmulator(**FAL_OPTIONS)
        await fal.start()
        stack.push_async_callback(fal.stop)
        telegram = TelegramEmulator()
        await telegram.start()
        stack.push_async_callback(telegram.stop)
        services = Services(
            {
                "DATABASE_URL": db_url,
                "NATS_URL": server.url,
                "TELEGRAM_BOT_TOKEN": SANDBOX_TOKEN,
                "TELEGRAM_API_URL": telegram.base_url,
                "STATUS_POLL_INTERVAL_SECONDS": "0.5",
                "TRAINER_MAX_CONCURRENT": "32",
                "SHUTDOWN_GRACE_SECONDS": "3",
                "ADMIN_IDS": "",
                # Flows are priced (their users get a grant in `flows.seed`), so every
                # scenario also checks that each attempt was charged once (and refunded once
                # when it failed), whatever crashed.
                "CREDITS_TRAINING": str(TRAINING_PRICE),
                # The shared product runs ~50 trainings at FAL's list price in one "day" of
                # the spend ledger; the default 100 USD cap would start refusing them midway
                # through the suite (a refusal is a test of its own, in the unit tier).
                "TRAINER_DAILY_SPEND_LIMIT_USD": "100000",
                **fal.client_env(),
                **(env or {}),
            },
            state / "logs",
            dict(crash or {}),
        )
        services.env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{services.ports['status']}"
        stack.push_async_callback(services.stop)
        await services.start()
        nc = await nats.connect(server.url, max_reconnect_attempts=-1)
        stack.push_async_callback(nc.close)
        js = nc.jetstream()
        await provision(js)
        yield Product(db_url, server, nc, js, fal, telegram, services)


@pytest.fixture
def product(tmp_path: Path, db_url: str) -> ProductFactory:
    """`async with product(crash=..., env=..., database_url=...) as p:` for one test."""

    def start(
        *,
        crash: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        database_url: str | None = None,
    ) -> contextlib.AbstractAsyncContextManager[Product]:
        return running_product(tmp_path, database_url or db_url, crash=crash, env=env)

    return start


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def shared(
    pg_admin_url: str, migrated_template: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Product]:
    db_url = await create_database(pg_admin_url, template=migrated_template)
    state = tmp_path_factory.mktemp("faults")
    async with running_product(state, db_url, env=SHARED_ENV) as product:
        yield product
