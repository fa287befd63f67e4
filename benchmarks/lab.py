"""What the scenarios run on: servers, a migrated database, emulators, service processes.

Embedded NATS and PostgreSQL are started here unless URLs are given (the test passes the
suite's PostgreSQL; a database of its own is created and dropped). Parts are started the
first time a scenario asks for them and stopped in reverse order at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from benchmarks.falhooks import WebhookSigner
from benchmarks.measure import BenchError
from benchmarks.sizes import Sizes
from contracts.jetstream import STREAM_TRAINING
from sandbox.embedded import EmbeddedNats, EmbeddedPostgres, free_port
from sandbox.fal import FalEmulator
from sandbox.supervisor import ROOT, base_env
from services.kit import migrate
from services.kit.broker import provision

log = logging.getLogger("benchmarks")
#: The status service's polling settings: its defaults, set explicitly so reports name them.
POLL_INTERVAL = 5.0
POLL_BATCH = 50
FAL_BUDGET = 10.0


class ServiceProcess:
    """`python -m <module>` (optionally under pyinstrument), stopped with SIGTERM."""

    def __init__(
        self,
        module: str,
        env: dict[str, str],
        log_file: Path,
        profile: Path | None = None,
        args: Sequence[str] = (),
    ):
        self.module, self.env, self.log_file, self.profile = module, env, log_file, profile
        self.args = list(args)
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        args = ["-m", self.module, *self.args]
        if self.profile is not None:
            args = ["-m", "pyinstrument", "-r", "text", "-o", str(self.profile), *args]
        with open(self.log_file, "ab") as out:  # noqa: ASYNC230 - a local file, instant
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, *args, env=self.env, stdout=out, stderr=out, cwd=ROOT
            )

    async def wait_ready(self, port: int, within: float = 90.0) -> None:
        deadline = asyncio.get_running_loop().time() + within
        async with aiohttp.ClientSession() as session:
            while asyncio.get_running_loop().time() < deadline:
                if self.proc is None or self.proc.returncode is not None:
                    raise BenchError(f"{self.module} exited:\n{self.tail()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise BenchError(f"{self.module} not ready within {within:.0f}s:\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_file.read_text(errors="replace")[-chars:]
        return ""

    async def stop(self, grace: float = 20.0) -> None:
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


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


class Lab:
    """Use as `async with Lab(sizes) as lab:`; see the module docstring."""

    def __init__(
        self,
        sizes: Sizes,
        *,
        pg_admin_url: str | None = None,
        nats_url: str | None = None,
        profile_dir: Path | None = None,
    ):
        self.sizes = sizes
        self.profile_dir = profile_dir
        self._pg_admin_url = pg_admin_url
        self.nats_url = nats_url or ""
        self.db_url = ""
        self.dir = Path(tempfile.mkdtemp(prefix="aisha-b-", dir="/tmp"))
        self._exit = contextlib.AsyncExitStack()
        self.signer = WebhookSigner()
        self._fal: FalEmulator | None = None
        self._status: ServiceProcess | None = None
        self.status_port = 0
        self.nc: NATS
        self.js: JetStreamContext
        self.pool: asyncpg.Pool

    async def __aenter__(self) -> Lab:
        try:
            await self._open()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _open(self) -> None:
        self._exit.callback(shutil.rmtree, self.dir, True)
        if not self.nats_url:
            server = EmbeddedNats(self.dir / "nats").start()
            self._exit.callback(server.stop)
            self.nats_url = server.url
        admin = self._pg_admin_url
        if admin is None:
            pg = EmbeddedPostgres(self.dir / "pg", delete_on_stop=True)
            await asyncio.to_thread(pg.start)
            self._exit.callback(pg.stop)
            admin = pg.url
        name = f"bench_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        if self._pg_admin_url is not None:
            self._exit.push_async_callback(_drop_database, admin, name)
        self.db_url = with_database(admin, name)
        await asyncio.to_thread(migrate.upgrade, self.db_url)
        self.nc = await nats.connect(self.nats_url, name="aisha-bench")
        self._exit.push_async_callback(self.nc.close)
        self.js = self.nc.jetstream()
        await provision(self.js)
        pool = await asyncpg.create_pool(self.db_url, min_size=2, max_size=10)
        assert pool is not None
        self.pool = pool
        self._exit.push_async_callback(pool.close)

    async def __aexit__(self, *_: object) -> None:
        await self._exit.aclose()

    async def fal(self) -> FalEmulator:
        """The FAL emulator; its jobs stay queued (the status service polls them)."""
        if self._fal is None:
            emulator = FalEmulator(queue_seconds=3600.0, state_dir=self.dir / "fal")
            await emulator.start()
            self._exit.push_async_callback(emulator.stop)
            self._fal = emulator
        return self._fal

    async def status(self) -> ServiceProcess:
        """The status service as its own process (started once, shared by the scenarios)."""
        if self._status is not None:
            return self._status
        fal = await self.fal()
        await self.signing()
        self.status_port = free_port()
        env = {
            **base_env(),
            **fal.client_env(),
            "DATABASE_URL": self.db_url,
            "NATS_URL": self.nats_url,
            "FAL_JWKS_URL": self.signer.jwks_url,
            "STATUS_HTTP_PORT": str(self.status_port),
            "STATUS_POLL_INTERVAL_SECONDS": str(POLL_INTERVAL),
            "STATUS_POLL_BATCH": str(POLL_BATCH),
            "STATUS_FAL_REQUESTS_PER_SECOND": str(FAL_BUDGET),
        }
        profile = self.profile_dir / "status.txt" if self.profile_dir else None
        process = ServiceProcess("services.status", env, self.log("status"), profile)
        await process.start()
        self._exit.push_async_callback(process.stop)
        await process.wait_ready(self.status_port)
        self._status = process
        return process

    async def signing(self) -> WebhookSigner:
        """The webhook signer, its JWKS served (started once, shared)."""
        if not self.signer.jwks_url:
            await self.signer.start()
            self._exit.push_async_callback(self.signer.stop)
        return self.signer

    def log(self, name: str) -> Path:
        (self.dir / "logs").mkdir(exist_ok=True)
        return self.dir / "logs" / f"{name}.log"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.status_port}/fal/webhook"

    async def purge_training_events(self) -> None:
        """Empty the training stream, so a scenario's consumers see only its own events."""
        await self.js.purge_stream(STREAM_TRAINING.name)


async def _drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
