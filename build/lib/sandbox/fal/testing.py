"""Helpers for tests that drive the FAL emulator: a webhook receiver with scripted answers."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass(frozen=True, slots=True)
class ReceivedWebhook:
    """One POST the receiver got, with the status it answered."""

    at: float
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """A loopback aiohttp endpoint; answers the scripted statuses in order, then 200."""

    def __init__(self, statuses: list[int] | None = None, path: str = "/fal/webhook") -> None:
        self._script: deque[int] = deque(statuses or [])
        self._path = path
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._changed = asyncio.Condition()
        self.received: list[ReceivedWebhook] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}{self._path}"

    def script(self, *statuses: int) -> None:
        self._script.extend(statuses)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(self._path, self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self._port = int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        status = self._script.popleft() if self._script else 200
        async with self._changed:
            self.received.append(ReceivedWebhook(time.time(), dict(request.headers), body, status))
            self._changed.notify_all()
        return web.json_response({"ok": status < 300}, status=status)

    async def wait_for(self, count: int, within: float = 5.0) -> list[ReceivedWebhook]:
        """Wait until `count` webhooks arrived (TimeoutError otherwise)."""
        async with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.received) >= count)
            await asyncio.wait_for(arrived, within)
        return list(self.received)
