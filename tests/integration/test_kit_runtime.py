"""`open_runtime` + HTTP face against the real NATS and PostgreSQL of the session."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from contracts.jetstream import STREAMS
from sandbox.embedded import free_port
from services.kit.config import CommonConfig, ConfigError
from services.kit.http import HttpServer
from services.kit.metrics import KitMetrics
from services.kit.runtime import Runtime, open_runtime


def make_config(db_url: str, nats_url: str, port: int) -> CommonConfig:
    return CommonConfig(
        service="trainer",
        database_url=db_url,
        nats_url=nats_url,
        http_host="127.0.0.1",
        http_port=port,
        log_format="text",
        log_level="INFO",
        shutdown_grace_seconds=5.0,
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def test_runtime_serves_health_readiness_metrics_and_shuts_down(
    db_url: str, nats_url: str, http: aiohttp.ClientSession
) -> None:
    port = free_port()
    stop = asyncio.Event()
    metrics = KitMetrics("trainer")

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hi")

    async with asyncio.timeout(20):
        async with open_runtime(
            make_config(db_url, nats_url, port), metrics, db_role="aisha_trainer", stop=stop
        ) as rt:
            assert isinstance(rt, Runtime)
            await rt.start_http([web.get("/hello", hello)])
            assert rt.http.bound_port == port
            base = f"http://127.0.0.1:{port}"

            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200
                assert await resp.json() == {"status": "ok"}
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 200
                body = await resp.json()
            assert body["ready"] is True
            assert body["checks"]["nats"] is True
            assert body["checks"]["postgres"] is True
            async with http.get(f"{base}/metrics") as resp:
                assert resp.status == 200
                text = await resp.text()
            assert "aisha_trainer_events_published" in text
            assert "aisha_trainer_ready 1.0" in text
            async with http.get(f"{base}/hello") as resp:
                assert await resp.text() == "hi"

            # Resources are wired as the service's role, and provisioning ran.
            assert await rt.pool.fetchval("SELECT current_user") == "aisha_trainer"
            names = {info.config.name for info in await rt.js.streams_info()}
            assert {s.name for s in STREAMS} <= names
            assert [t.get_name() for t in rt.tasks] == ["outbox"]

            stop.set()
            await rt.wait()
            assert all(t.done() for t in rt.tasks)
            assert rt.http.shutting_down
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 503
                body = await resp.json()
            assert body["ready"] is False
            assert body["checks"]["accepting_work"] is False
            nc = rt.nc
        assert nc.is_closed
        assert rt.pool.is_closing()
    # The port is free again.
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        sock.bind(("127.0.0.1", port))


async def test_second_server_on_the_same_port_is_a_config_error(db_url: str, nats_url: str) -> None:
    port = free_port()
    stop = asyncio.Event()
    config = make_config(db_url, nats_url, port)
    async with asyncio.timeout(20):
        async with open_runtime(config, KitMetrics("trainer"), db_role=None, stop=stop) as rt:
            await rt.start_http()
            other = HttpServer("127.0.0.1", port, "TRAINER_HTTP_PORT", KitMetrics("trainer"))
            with pytest.raises(ConfigError, match=rf"^TRAINER_HTTP_PORT: port {port} .*in use"):
                await other.start()

            # A whole second runtime on the taken port fails fast and cleans up, not hangs.
            second_stop = asyncio.Event()
            with pytest.raises(ConfigError, match="TRAINER_HTTP_PORT"):
                async with open_runtime(
                    config, KitMetrics("trainer"), db_role=None, stop=second_stop
                ) as second:
                    await second.start_http()
            assert second_stop.is_set()
            assert all(t.done() for t in second.tasks)
            assert second.nc.is_closed

            stop.set()
            await rt.wait()


async def test_port_zero_reports_the_bound_port(http: aiohttp.ClientSession) -> None:
    server = HttpServer("127.0.0.1", 0, "X_HTTP_PORT", KitMetrics("x"))
    await server.start()
    try:
        assert server.bound_port != 0
        async with http.get(f"http://127.0.0.1:{server.bound_port}/healthz") as resp:
            assert resp.status == 200
    finally:
        await server.stop()


async def test_readiness_is_false_when_a_check_fails(http: aiohttp.ClientSession) -> None:
    metrics = KitMetrics("x")
    server = HttpServer("127.0.0.1", 0, "X_HTTP_PORT", metrics)

    async def ok() -> bool:
        return True

    async def broken() -> bool:
        raise OSError("connection refused")

    async def down() -> bool:
        return False

    async def pool_closed() -> bool:
        raise asyncpg.InterfaceError("pool is closed")

    async def too_many() -> bool:
        raise asyncpg.TooManyConnectionsError("sorry, too many clients already")

    server.add_check("ok", ok)
    server.add_check("broken", broken)
    server.add_check("down", down)
    server.add_check("pool_closed", pool_closed)
    server.add_check("too_many", too_many)
    await server.start()
    try:
        async with http.get(f"http://127.0.0.1:{server.bound_port}/readyz") as resp:
            assert resp.status == 503
            body = await resp.json()
        assert body == {
            "ready": False,
            "checks": {
                "accepting_work": True,
                "ok": True,
                "broken": False,
                "down": False,
                "pool_closed": False,
                "too_many": False,
            },
        }
        assert metrics.registry.get_sample_value("aisha_x_ready") == 0
    finally:
        await server.stop()


async def test_wait_stops_everything_when_a_background_task_dies(
    db_url: str, nats_url: str
) -> None:
    stop = asyncio.Event()
    async with asyncio.timeout(20):
        async with open_runtime(
            make_config(db_url, nats_url, free_port()),
            KitMetrics("trainer"),
            db_role="aisha_trainer",
            stop=stop,
        ) as rt:

            async def crash() -> None:
                raise RuntimeError("worker died")

            rt.spawn("crasher", crash())
            await rt.wait()
            assert stop.is_set()
            assert all(t.done() for t in rt.tasks)
        assert rt.nc.is_closed
