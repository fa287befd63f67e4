"""Each service's HTTP face: `/metrics`, `/healthz`, `/readyz`, plus its own routes."""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.kit.config import ConfigError
from services.kit.metrics import KitMetrics

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]]


class HttpServer:
    """aiohttp runner bound to one port; readiness is the AND of named checks."""

    def __init__(
        self,
        host: str,
        port: int,
        port_variable: str,
        metrics: KitMetrics,
    ):
        self._host = host
        self._port = port
        self._port_variable = port_variable
        self._metrics = metrics
        self._checks: dict[str, ReadinessCheck] = {}
        self.shutting_down = False
        self._runner: web.AppRunner | None = None
        self.bound_port = port

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        self._checks[name] = check

    async def start(
        self, routes: Iterable[web.RouteDef] = (), client_max_size: int = 1024**2
    ) -> None:
        app = web.Application(client_max_size=client_max_size)
        app.add_routes(
            [
                web.get("/metrics", self._metrics_view),
                web.get("/healthz", self._healthz),
                web.get("/readyz", self._readyz),
                *routes,
            ]
        )
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"{self._port_variable}: port {self._port} on {self._host} is already in use"
                ) from None
            raise
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.bound_port = int(sockets[0].getsockname()[1])
        log.info("http listening on %s:%d", self._host, self.bound_port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics_view(self, _request: web.Request) -> web.Response:
        # Evaluate readiness on every scrape too, so `aisha_<service>_ready` is current even
        # where nothing polls /readyz (Prometheus alerts on it).
        await self._evaluate()
        body = generate_latest(self._metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, _request: web.Request) -> web.Response:
        ready, results = await self._evaluate()
        return web.json_response({"ready": ready, "checks": results}, status=200 if ready else 503)

    async def _evaluate(self) -> tuple[bool, dict[str, bool]]:
        results: dict[str, bool] = {"accepting_work": not self.shutting_down}
        for name, check in self._checks.items():
            try:
                async with asyncio.timeout(2.0):
                    results[name] = await check()
            except Exception as exc:  # noqa: BLE001 - e.g. asyncpg errors: not ready, not a 500
                log.debug("readiness check %s failed: %s", name, exc)
                results[name] = False
        ready = all(results.values())
        self._metrics.ready.set(1 if ready else 0)
        return ready, results
