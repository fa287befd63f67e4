"""The whole product on one machine: servers, migrations, emulators, services, web chat.

Every outside dependency is embedded unless its variable points elsewhere:
`NATS_URL` and `DATABASE_URL` switch to external servers, `TELEGRAM_BOT_TOKEN` to real
Telegram, `FAL_KEY` to real FAL unless `FAL_TRAINING_TEST_MODE=true`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from sandbox.embedded import EmbeddedNats, EmbeddedPostgres, port_is_free
from sandbox.fal import FalEmulator
from sandbox.supervisor import Child, Supervisor, base_env
from sandbox.telegram import TelegramEmulator
from services.kit import migrate

log = logging.getLogger("sandbox")
SANDBOX_TOKEN = "7000000001:sandbox-token-not-a-secret"
SERVICES = (("bot", 8081), ("trainer", 8082), ("status", 8083))


class StackError(RuntimeError):
    """The stack cannot start; the message tells the operator what to change."""


@dataclass(frozen=True)
class StackOptions:
    state_dir: Path
    webchat_port: int = 8080
    nats_port: int = 4222
    fal_training_seconds: float = 60.0
    fal_generation_seconds: float = 4.0
    poll_interval_seconds: float = 2.0


def _truthy(value: str | None) -> bool:
    return (value or "").lower() in {"1", "true", "yes", "on"}


class Stack:
    def __init__(self, options: StackOptions, environ: Mapping[str, str] | None = None):
        self.options = options
        self.environ = dict(os.environ if environ is None else environ)
        self._exit = contextlib.AsyncExitStack()
        self.telegram: TelegramEmulator | None = None
        self.fal: FalEmulator | None = None
        self.supervisor: Supervisor | None = None
        self.urls: dict[str, str] = {}

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        opts = self.options
        opts.state_dir.mkdir(parents=True, exist_ok=True)
        env = base_env()
        env.update(self.environ)
        ports = {name: int(env.get(f"{name.upper()}_HTTP_PORT", str(p))) for name, p in SERVICES}
        for name, port in ports.items():
            if port and not port_is_free(port):
                raise StackError(f"{name.upper()}_HTTP_PORT: port {port} is already in use")
        if not env.get("NATS_URL"):
            port = opts.nats_port if port_is_free(opts.nats_port) else 0
            nats = EmbeddedNats(opts.state_dir / "nats", port=port or None).start()
            self._exit.callback(nats.stop)
            env["NATS_URL"] = nats.url
        if not env.get("DATABASE_URL"):
            pg = EmbeddedPostgres(opts.state_dir / "pg").start()
            self._exit.callback(pg.stop)
            env["DATABASE_URL"] = pg.url
        await asyncio.to_thread(migrate.upgrade, env["DATABASE_URL"])
        if not env.get("TELEGRAM_BOT_TOKEN"):
            if not port_is_free(opts.webchat_port):
                raise StackError(f"AISHA_WEBCHAT_PORT: port {opts.webchat_port} is already in use")
            self.telegram = TelegramEmulator(state_dir=opts.state_dir / "telegram")
            await self.telegram.start("127.0.0.1", opts.webchat_port)
            self._exit.push_async_callback(self.telegram.stop)
            env["TELEGRAM_BOT_TOKEN"] = SANDBOX_TOKEN
            env["TELEGRAM_API_URL"] = self.telegram.base_url
            self.urls["web chat"] = self.telegram.web_url
        if not env.get("FAL_KEY") or _truthy(env.get("FAL_TRAINING_TEST_MODE")):
            self.fal = FalEmulator(
                training_seconds=opts.fal_training_seconds,
                generation_seconds=opts.fal_generation_seconds,
                state_dir=opts.state_dir / "fal",
                persist_dir=opts.state_dir / "fal" / "store",
            )
            await self.fal.start()
            self._exit.push_async_callback(self.fal.stop)
            env.update(self.fal.client_env())
            env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{ports['status']}")
            env.setdefault("STATUS_POLL_INTERVAL_SECONDS", str(opts.poll_interval_seconds))
            self.urls["FAL emulator control"] = self.fal.control_url
        logs = opts.state_dir / "logs"
        children = []
        for name, _ in SERVICES:
            child_env = dict(env, **{f"{name.upper()}_HTTP_PORT": str(ports[name])})
            children.append(Child(name, f"services.{name}", child_env, logs / f"{name}.log"))
            self.urls[f"{name} health"] = f"http://127.0.0.1:{ports[name]}/healthz"
        self.supervisor = Supervisor(children)
        await self.supervisor.start()
        self._exit.push_async_callback(self.supervisor.stop)
        self.urls["NATS"] = env["NATS_URL"]
        self.urls["logs"] = str(logs)
        await self._wait_healthy(ports)

    async def _wait_healthy(self, ports: Mapping[str, int], limit: float = 90.0) -> None:
        async with aiohttp.ClientSession() as session:
            for name, port in ports.items():
                url = f"http://127.0.0.1:{port}/healthz"
                deadline = asyncio.get_running_loop().time() + limit
                while True:
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                            if r.status == 200:
                                break
                    if asyncio.get_running_loop().time() > deadline:
                        raise StackError(
                            f"{name} did not become healthy; see {self.options.state_dir}/logs"
                        )
                    await asyncio.sleep(0.3)

    async def stop(self) -> None:
        await self._exit.aclose()
