"""NATS and PostgreSQL go away mid-flow and come back: the services wait, then resume.

Each scenario runs a private product (the restart would disturb the shared one). While a
server is down every service's `/readyz` answers 503 (so an orchestrator stops routing to
it) and `/healthz` keeps answering (so it is not restarted for nothing); once the server
is back they turn ready again without being restarted themselves, and the users' trainings
that were in flight all finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from sandbox.embedded import EmbeddedPostgres
from services.kit import migrate
from tests.conftest import create_database
from tests.faults.conftest import Product, ProductFactory
from tests.faults.flows import Flow, drained, fal_jobs_per_key, seed, settle, start
from tests.faults.harness import SERVICES

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]
DOWN_SECONDS = 3.0


async def all_ready_is(p: Product, status: int, within: float) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        seen = {name: await p.services.readyz(name) for name in SERVICES}
        if all(code == status for code in seen.values()):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"/readyz never all {status} within {within}s: {seen}")
        await asyncio.sleep(0.2)


async def flows_in_flight(p: Product, count: int) -> list[Flow]:
    """`count` users whose jobs are running at FAL (so webhooks arrive during the outage)."""
    flows = [await seed(p.db_url, p.js, p.telegram) for _ in range(count)]
    await asyncio.gather(*(start(p.db_url, p.telegram, f) for f in flows))
    deadline = asyncio.get_running_loop().time() + 30
    while not all(fal_jobs_per_key(p.fal)[f.key] for f in flows):
        assert asyncio.get_running_loop().time() < deadline, "jobs never reached FAL"
        await asyncio.sleep(0.2)
    return flows


async def outage(
    p: Product, stop: Callable[[], Awaitable[None]], restart: Callable[[], Awaitable[None]]
) -> list[Flow]:
    p.fal.configure(training_seconds=4.0)
    flows = await flows_in_flight(p, 3)
    await stop()
    await all_ready_is(p, 503, within=15)
    assert all(p.services.alive(n) for n in SERVICES)
    await asyncio.sleep(DOWN_SECONDS)  # the jobs finish at FAL meanwhile
    await restart()
    await all_ready_is(p, 200, within=30)
    return flows


async def test_nats_restart_mid_flow(product: ProductFactory) -> None:
    async with product() as p:

        async def stop() -> None:
            await asyncio.to_thread(p.nats.stop)

        async def restart() -> None:
            await asyncio.to_thread(p.nats.start)  # same port, same JetStream store

        flows = await outage(p, stop, restart)
        outcome = await settle(p.db_url, p.telegram, p.fal, flows, within=60)
        print(outcome.line("nats_restart", 0))
        assert p.services.exits == []
        assert outcome.lost == 0
        assert outcome.duplicated == 0
        assert outcome.misbilled == 0
        await drained(p.db_url, p.js, p.dead_letters)


class RestartablePostgres:
    """A private pgserver cluster stopped and started with its own `pg_ctl` (pgserver
    itself only starts a server once per process)."""

    def __init__(self, data_dir: Path):
        self.server = EmbeddedPostgres(data_dir, delete_on_stop=True)
        self.data_dir = data_dir

    def start(self) -> str:
        self.server.start()
        return self.server.url

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl  # type: ignore[attr-defined]

        user = "pgserver" if os.geteuid() == 0 else None
        pg_ctl(list(args), pgdata=self.data_dir, user=user, timeout=30)

    def stop_server(self) -> None:
        self._pg_ctl("-w", "-m", "fast", "stop")

    def start_server(self) -> None:
        socket_dir = parse_qs(urlsplit(self.server.url).query)["host"][0]
        log = str(self.data_dir / "log")
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", log, "start")

    def close(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop_server()
        self.server.stop()


async def test_postgres_restart_mid_flow(product: ProductFactory, tmp_path: Path) -> None:
    pg = RestartablePostgres(Path("/tmp") / f"aisha-pg-{os.getpid()}-{tmp_path.name[-8:]}")
    admin_url = await asyncio.to_thread(pg.start)
    try:
        db_url = await create_database(admin_url)
        await asyncio.to_thread(migrate.upgrade, db_url)
        async with product(database_url=db_url) as p:

            async def stop() -> None:
                await asyncio.to_thread(pg.stop_server)

            async def restart() -> None:
                await asyncio.to_thread(pg.start_server)

            flows = await outage(p, stop, restart)
            outcome = await settle(p.db_url, p.telegram, p.fal, flows, within=60)
            print(outcome.line("postgres_restart", 0))
            assert outcome.lost == 0
            assert outcome.duplicated == 0
            assert outcome.misbilled == 0
            await drained(p.db_url, p.js, p.dead_letters)
            assert p.services.exits == []
    finally:
        await asyncio.to_thread(pg.close)
