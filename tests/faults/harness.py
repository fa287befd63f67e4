"""The fault suite's machinery: the three real services as processes, killed and restarted.

`Services` starts `python -m services.<name>` for bot, trainer and status (the launcher's
`Child`), and a watchdog restarts any that dies — as the sandbox supervisor or an
orchestrator would — without the crash points it was armed with, so a crash point fires
once per scenario. Exits are recorded (137 = a crash point, -9 = SIGKILL) so a scenario
can assert that the fault it meant to inject actually happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from sandbox.embedded import free_port
from sandbox.supervisor import Child, base_env
from services.kit.crashpoints import ENV as CRASH_ENV

SERVICES = ("bot", "trainer", "status")


@dataclass
class Services:
    """Three service processes with a restart-on-death watchdog."""

    env: dict[str, str]
    log_dir: Path
    crash: Mapping[str, str] = field(default_factory=dict)
    restart_delay: float = 0.3
    ports: dict[str, int] = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)
    exits: list[tuple[str, int]] = field(default_factory=list)
    restarts: Counter[str] = field(default_factory=Counter)
    _watchdog: asyncio.Task[None] | None = None
    _stopping: bool = False
    _paused: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        for name in SERVICES:
            self.ports[name] = free_port()

    def child_env(self, name: str, armed: bool) -> dict[str, str]:
        env = {**base_env(), **self.env}
        for other in SERVICES:
            env[f"{other.upper()}_HTTP_PORT"] = str(self.ports[other])
        env.pop(CRASH_ENV, None)
        if armed and self.crash.get(name):
            env[CRASH_ENV] = self.crash[name]
        return env

    async def start(self, within: float = 60.0) -> None:
        for name in SERVICES:
            child = Child(
                name, f"services.{name}", self.child_env(name, True), self.log_dir / f"{name}.log"
            )
            await child.start()
            self.children[name] = child
        await asyncio.gather(*(self.wait_ready(n, within) for n in SERVICES))
        self._watchdog = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while not self._stopping:
            for name, child in self.children.items():
                proc = child.proc
                if proc is None or proc.returncode is None or name in self._paused:
                    continue
                self.exits.append((name, proc.returncode))
                await asyncio.sleep(self.restart_delay)
                if self._stopping:
                    return
                child.env = self.child_env(name, armed=False)
                self.restarts[name] += 1
                await child.start()
            await asyncio.sleep(0.1)

    async def rearm(self, name: str, points: str) -> None:
        """Restart `name` gracefully with `points` armed (the next death restarts it clean)."""
        child = self.children[name]
        self._paused.add(name)
        try:
            await child.stop(grace=10)
            self.crash = {**self.crash, name: points}
            child.env = self.child_env(name, armed=True)
            await child.start()
        finally:
            self._paused.discard(name)
        await self.wait_ready(name)

    def kill(self, name: str) -> None:
        """SIGKILL: no signal handler, no drain, no flush."""
        proc = self.children[name].proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)

    def alive(self, name: str) -> bool:
        proc = self.children[name].proc
        return proc is not None and proc.returncode is None

    def crashed_at(self, point: str) -> int:
        """How many times the crash point fired (each logs one line before exiting)."""
        total = 0
        for name in SERVICES:
            log = self.log_dir / f"{name}.log"
            if log.exists():
                total += log.read_text(errors="replace").count(f"crashpoint {point} hit")
        return total

    async def wait_ready(self, name: str, within: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while await self.readyz(name) != 200:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{name} not ready within {within}s; see {self.log_dir}")
            await asyncio.sleep(0.2)

    async def readyz(self, name: str) -> int:
        """HTTP status of /readyz (0 when the process does not answer)."""
        url = f"http://127.0.0.1:{self.ports[name]}/readyz"
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as response,
            ):
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return 0

    async def metric(self, name: str, family: str, **labels: str) -> float:
        """Sum of a counter/gauge family's samples on `name`'s /metrics matching `labels`."""
        url = f"http://127.0.0.1:{self.ports[name]}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            text = await response.text()
        total = 0.0
        for fam in text_string_to_metric_families(text):
            if family not in (fam.name, f"{fam.name}_total"):
                continue
            for sample in fam.samples:
                if sample.name.endswith("_created"):
                    continue
                if all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    async def stop(self) -> None:
        self._stopping = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        await asyncio.gather(*(c.stop(grace=10) for c in self.children.values()))
