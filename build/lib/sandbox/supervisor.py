"""Runs the three services as child processes and restarts one that dies.

Children get SIGTERM on stop (they drain and exit), SIGKILL only after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("sandbox")
ROOT = str(Path(__file__).resolve().parent.parent)


@dataclass
class Child:
    name: str
    module: str
    env: dict[str, str]
    log_file: Path
    restarts: int = 0
    proc: asyncio.subprocess.Process | None = field(default=None, repr=False)

    async def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:  # noqa: ASYNC230 - opening a local log is instant
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                env=self.env,
                stdout=out,
                stderr=out,
                cwd=ROOT,
            )

    async def stop(self, grace: float = 15.0) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


class Supervisor:
    """Keeps children alive: a crashed service is restarted with a growing delay."""

    def __init__(self, children: list[Child], max_restarts: int = 20):
        self.children = children
        self._max_restarts = max_restarts
        self._stopping = False

    async def start(self) -> None:
        for child in self.children:
            await child.start()

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for child in self.children:
                proc = child.proc
                if proc is None or proc.returncode is None or self._stopping:
                    continue
                if child.restarts >= self._max_restarts:
                    log.error("%s keeps crashing; see %s", child.name, child.log_file)
                    stop.set()
                    return
                child.restarts += 1
                log.warning(
                    "%s exited with %s; restarting (%d) — log: %s",
                    child.name,
                    proc.returncode,
                    child.restarts,
                    child.log_file,
                )
                await asyncio.sleep(min(10.0, 0.5 * child.restarts))
                await child.start()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    await stop.wait()

    async def stop(self) -> None:
        self._stopping = True
        await asyncio.gather(*(c.stop() for c in self.children))


def base_env() -> dict[str, str]:
    """The parent's environment minus anything that would confuse a child service."""
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env
