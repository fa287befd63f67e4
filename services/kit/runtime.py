"""One process's life: config → logs → resources → work → signal → drain → exit.

`run_service` turns SIGTERM/SIGINT into a stop event (so pgserver and NATS clean up on a
normal exit), and `Runtime` owns the shared resources in an AsyncExitStack: NATS (drained
last), the asyncpg pool, the HTTP server, background tasks and the outbox relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from aiohttp import web
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from services.kit.broker import connect, provision
from services.kit.config import CommonConfig, ConfigError, Env, environment
from services.kit.consumer import EventConsumer
from services.kit.db import create_pool
from services.kit.http import HttpServer
from services.kit.logs import setup_logging
from services.kit.metrics import KitMetrics
from services.kit.micro import register, unregister
from services.kit.ops import OpsQueries
from services.kit.outbox import OutboxRelay

log = logging.getLogger(__name__)
C = TypeVar("C")


@dataclass
class Runtime:
    """The wired resources of one service process."""

    config: CommonConfig
    metrics: KitMetrics
    nc: NATS
    js: JetStreamContext
    pool: asyncpg.Pool
    http: HttpServer
    stop: asyncio.Event
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start_http(
        self, routes: Iterable[web.RouteDef] = (), client_max_size: int = 1024**2
    ) -> None:
        """Serve `/metrics`, `/healthz`, `/readyz` and the service's routes; fails fast if
        the port is taken."""
        await self.http.start(routes, client_max_size)

    def spawn(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        self.tasks.append(asyncio.create_task(coro, name=name))

    def run_consumer(self, consumer: EventConsumer) -> None:
        self.spawn(f"consumer:{consumer.name}", consumer.run(self.stop))
        self.spawn(f"lag:{consumer.name}", self._report_lag(consumer))

    async def _report_lag(self, consumer: EventConsumer) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(Exception):
                await consumer.report_lag()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10.0):
                    await self.stop.wait()

    async def wait(self) -> None:
        """Block until a stop signal or until a background task dies (then stop all)."""
        stopper = asyncio.create_task(self.stop.wait())
        done, _ = await asyncio.wait([stopper, *self.tasks], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for task in done:
            if task is not stopper and not task.cancelled() and task.exception() is not None:
                log.error("task %s died", task.get_name(), exc_info=task.exception())
        await self._stop_tasks()

    async def _stop_tasks(self) -> None:
        """Set the stop event, give the tasks the grace period, then cancel the late ones."""
        self.stop.set()
        self.http.shutting_down = True
        pending = [t for t in self.tasks if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=self.config.shutdown_grace_seconds)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)


@contextlib.asynccontextmanager
async def open_runtime(
    config: CommonConfig,
    metrics: KitMetrics,
    *,
    db_role: str | None,
    stop: asyncio.Event,
) -> AsyncIterator[Runtime]:
    """Connect everything in order and undo it in reverse, whatever happens.

    The HTTP server is created here but started by `Runtime.start_http`, once the
    service has wired the routes it adds (webhooks) to the kit's own.
    """
    async with contextlib.AsyncExitStack() as stack:
        http = HttpServer(
            config.http_host, config.http_port, f"{config.service.upper()}_HTTP_PORT", metrics
        )
        stack.push_async_callback(http.stop)
        nc = await connect(config.nats_url, f"aisha-{config.service}")
        stack.push_async_callback(_drain, nc)
        js = nc.jetstream()
        await provision(js, replicas=config.stream_replicas)
        pool = await create_pool(config.database_url, db_role)
        stack.push_async_callback(_close_pool, pool, config.shutdown_grace_seconds)
        # `$SRV.*` and the operator endpoints (`aisha.ops.*`); stopped before the pool closes.
        micro = await register(nc, config.service, OpsQueries(pool, js).endpoints())
        stack.push_async_callback(unregister, micro)

        async def nats_ok() -> bool:
            return bool(nc.is_connected)

        async def db_ok() -> bool:
            async with pool.acquire(timeout=2.0) as conn:
                return bool(await conn.fetchval("SELECT true"))

        http.add_check("nats", nats_ok)
        http.add_check("postgres", db_ok)
        rt = Runtime(config, metrics, nc, js, pool, http, stop)
        # Leaving the block without `rt.wait()` (a startup error such as a taken port) must
        # still stop the tasks before the pool closes: `Pool.close` waits for the relay's
        # connection, and orphaned tasks would run on against closed resources.
        stack.push_async_callback(rt._stop_tasks)
        rt.spawn("outbox", OutboxRelay(pool, js, config.service, metrics).run(stop))
        yield rt


async def _close_pool(pool: asyncpg.Pool, grace: float) -> None:
    """`Pool.close` waits for every connection to come back; after a database outage one
    may never do, and a shutdown that hangs is a process nobody restarts. Bounded."""
    try:
        await asyncio.wait_for(pool.close(), timeout=max(1.0, grace))
    except TimeoutError:
        log.warning("database pool did not close in %.0fs; terminating it", grace)
        pool.terminate()


async def _drain(nc: NATS) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(nc.drain(), timeout=5.0)


def run_service(
    service: str,
    load: Callable[[Env], C],
    amain: Callable[[C, asyncio.Event], Awaitable[None]],
    common: Callable[[C], CommonConfig],
    secrets: Callable[[C], Iterable[str]],
) -> int:
    """The `python -m services.<name>` entry: exit 2 with one line on bad config."""
    try:
        config = load(Env(environment()))
    except ConfigError as exc:
        print(f"aisha-{service}: configuration error: {exc}", file=sys.stderr)
        return 2
    cc = common(config)
    setup_logging(service, cc.log_format, cc.log_level, secrets(config))
    # Everything imported so far lives as long as the process: keep it out of the cyclic
    # collector's full passes, which otherwise stall the event loop for tens to a hundred
    # milliseconds (a webhook's or a reply's whole latency budget) each time they walk it.
    gc.freeze()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await amain(config, stop)

    try:
        asyncio.run(main())
    except ConfigError as exc:
        print(f"aisha-{service}: {exc}", file=sys.stderr)
        return 2
    except (OSError, asyncpg.PostgresError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0
