"""`FalEmulator`: FAL's queue, storage and webhooks on loopback, reached by the real fal-client."""

from __future__ import annotations

import asyncio
import logging
import shutil
import ssl
import tempfile
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from sandbox.fal import persist
from sandbox.fal.app import build_app
from sandbox.fal.context import Context
from sandbox.fal.control import control_routes
from sandbox.fal.endpoints import LOG_PROFILES, Apps, AppSettings
from sandbox.fal.faults import FaultBook, FaultRule
from sandbox.fal.jobs import Clock, Job, JobRunner
from sandbox.fal.outcomes import Outcomes
from sandbox.fal.proxy import ConnectProxy
from sandbox.fal.recorder import RecordedRequest, Recorder
from sandbox.fal.storage import Storage
from sandbox.fal.tls import CertFiles, make_cert_files
from sandbox.fal.webhooks import Delivery, Segmenting, WebhookSender
from sandbox.snapshot import Picture, Snapshots

JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
log = logging.getLogger("sandbox.fal")


class FalEmulator:
    """Start with `await emu.start()` (or `async with`), point a client at `emu.client_env()`.

    `state_dir` holds the throwaway TLS certificates; `persist_dir`, when given, keeps the
    storage and the jobs across restarts (`sandbox.fal.persist`), otherwise they live in memory.
    """

    def __init__(
        self,
        *,
        training_seconds: float = 90.0,
        generation_seconds: float = 5.0,
        queue_seconds: float = 2.0,
        min_training_images: int = 10,
        concurrency: int = 2,
        time_scale: float = 1.0,
        result_ttl_seconds: float = 3600.0,
        lifetime_scale: float = 1.0,
        webhook_retries: int = 10,
        webhook_backoff_seconds: float = 7.0,
        webhook_timeout_seconds: float = 15.0,
        webhook_segmenting: Segmenting | None = None,
        outcomes: Outcomes | None = None,
        fal_key: str = "sandbox-key-id:sandbox-key-secret",
        strict_key: bool = False,
        validate_at_submit: bool = False,
        user_id: str = "sandbox-user",
        state_dir: Path | None = None,
        persist_dir: Path | None = None,
        host: str = "127.0.0.1",
        proxy_port: int = 0,
        control_port: int = 0,
        tls_port: int = 0,
    ) -> None:
        self._host = host
        self._ports = {"proxy": proxy_port, "control": control_port, "tls": tls_port}
        self._state_dir = state_dir
        self._own_dir: Path | None = None
        self.clock = Clock(time_scale)
        self.storage = Storage(lifetime_scale)
        self.faults = FaultBook()
        self.recorder = Recorder()
        self.apps = Apps(
            self.storage,
            self.clock,
            AppSettings(
                training_seconds, generation_seconds, min_training_images, result_ttl_seconds
            ),
        )
        self.webhook_sender = WebhookSender(
            self.clock,
            user_id=user_id,
            retries=webhook_retries,
            backoff_seconds=webhook_backoff_seconds,
            timeout_seconds=webhook_timeout_seconds,
            segmenting=replace(webhook_segmenting or Segmenting.from_env()),  # a copy: configurable
        )
        self.outcomes = replace(outcomes or Outcomes.from_env())
        self._concurrency = concurrency
        self._queue_seconds = queue_seconds
        self.fal_key = fal_key
        self._strict_key = strict_key
        self._validate_at_submit = validate_at_submit
        self._runner: JobRunner | None = None
        self._web: web.AppRunner | None = None
        self._proxy: ConnectProxy | None = None
        self._certs: CertFiles | None = None
        self._snapshots = None if persist_dir is None else Snapshots(persist_dir, self._picture)

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        directory = self._state_dir
        if directory is None:
            directory = self._own_dir = Path(tempfile.mkdtemp(prefix="fal-emu-"))
        self._certs = make_cert_files(directory)
        self._runner = JobRunner(
            self.clock,
            self.apps.execute,
            self._on_done,
            concurrency=self._concurrency,
            queue_seconds=self._queue_seconds,
        )
        if self._snapshots is not None:
            self._restore(self._snapshots, self._runner)
        await self.webhook_sender.start()
        ctx = Context(
            self.storage,
            self._runner,
            self.faults,
            self.recorder,
            self.webhook_sender,
            self.clock,
            self.fal_key,
            self._strict_key,
            self._validate_at_submit,
            self.outcomes,
        )
        self._web = web.AppRunner(
            build_app(ctx, control_routes(self)), access_log=None, shutdown_timeout=0.5
        )
        await self._web.setup()
        tls_site = web.TCPSite(
            self._web, self._host, self._ports["tls"], ssl_context=self._certs.server_context()
        )
        plain_site = web.TCPSite(self._web, self._host, self._ports["control"])
        await tls_site.start()
        await plain_site.start()
        self._ports["tls"] = _bound_port(tls_site)
        self._ports["control"] = _bound_port(plain_site)
        self._proxy = ConnectProxy(self._ports["tls"], self._ports["control"], self._host)
        await self._proxy.start(self._ports["proxy"])
        self._ports["proxy"] = self._proxy.port

    async def stop(self) -> None:
        if self._proxy is not None:
            await self._proxy.stop()
            self._proxy = None
        if self._runner is not None:
            await self._runner.stop()
        if self._snapshots is not None:
            await self._snapshots.close()
        await self.webhook_sender.stop()
        if self._web is not None:
            await self._web.cleanup()
            self._web = None
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _picture(self) -> Picture:
        return persist.take(self.storage, self._runner)

    def _restore(self, snapshots: Snapshots, runner: JobRunner) -> None:
        document = snapshots.load()
        if document is not None:
            rerun = persist.restore(self.storage, runner, document, snapshots.blob)
            jobs, where = len(runner.jobs), snapshots.directory
            log.info("restored %d jobs (%d run again) from %s", jobs, rerun, where)
        snapshots.start()

    def _on_done(self, job: Job) -> None:
        if not job.cancelled or self.outcomes.cancel_webhook:
            self.webhook_sender.dispatch(job)

    # -- addresses ------------------------------------------------------------------------------
    @property
    def proxy_url(self) -> str:
        return f"http://{self._host}:{self._ports['proxy']}"

    @property
    def control_url(self) -> str:
        return f"http://{self._host}:{self._ports['control']}"

    @property
    def ca_file(self) -> Path:
        assert self._certs is not None, "emulator not started"
        return self._certs.ca_file

    @property
    def ca_bundle_file(self) -> Path:
        """Public roots plus the throwaway CA: what `SSL_CERT_FILE` points at."""
        assert self._certs is not None, "emulator not started"
        return self._certs.bundle_file

    @property
    def public_key_jwks_url(self) -> str:
        return JWKS_URL

    @property
    def jwks(self) -> dict[str, Any]:
        return self.webhook_sender.jwks

    def client_env(self) -> dict[str, str]:
        """Environment for a process whose fal-client must reach this emulator."""
        return {
            "HTTPS_PROXY": self.proxy_url,
            "https_proxy": self.proxy_url,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "SSL_CERT_FILE": str(self.ca_bundle_file),
            "FAL_KEY": self.fal_key,
        }

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context trusting the emulator's CA (for httpx/aiohttp in tests)."""
        assert self._certs is not None, "emulator not started"
        return self._certs.client_context()

    # -- inspection and control --------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        return self.recorder.find()

    @property
    def jobs(self) -> list[Job]:
        return [] if self._runner is None else list(self._runner.jobs.values())

    def job(self, request_id: str) -> Job | None:
        return None if self._runner is None else self._runner.jobs.get(request_id)

    @property
    def webhook_deliveries(self) -> list[Delivery]:
        return list(self.webhook_sender.deliveries)

    def add_fault(self, name: str, **kwargs: Any) -> FaultRule:
        """Shortcut for `faults.add` (see `sandbox.fal.faults` for names and params)."""
        return self.faults.add(name, **kwargs)

    def put_file(self, data: bytes, content_type: str, name: str, ttl: float | None = None) -> str:
        """Store an object on the emulated CDN without going through fal-client."""
        return self.storage.put(data, content_type, name, ttl=ttl).url

    def expire_url(self, url: str, status: int = 404) -> bool:
        stored = self.storage.by_url(url)
        if stored is None:
            return False
        self.storage.expire(stored.key, status)
        return True

    def settings(self) -> dict[str, Any]:
        s = self.apps.settings
        return {
            "training_seconds": s.training_seconds,
            "generation_seconds": s.generation_seconds,
            "min_training_images": s.min_training_images,
            "result_ttl_seconds": s.result_ttl_seconds,
            "lifetime_scale": self.storage.lifetime_scale,
            "log_profile": s.log_profile,
            "upscale_max_input_pixels": s.upscale_max_input_pixels,
            "image_to_image_max_input_pixels": s.image_to_image_max_input_pixels,
            "time_scale": self.clock.time_scale,
            **self.webhook_sender.segmenting.as_dict(),
            **self.outcomes.as_dict(),
        }

    def configure(self, **changes: Any) -> None:
        """Change durations/limits at run time (keys as in `settings()`)."""
        for key, value in changes.items():
            if key == "time_scale":
                self.clock.time_scale = float(value)
            elif key in ("training_seconds", "generation_seconds", "result_ttl_seconds"):
                setattr(self.apps.settings, key, float(value))
            elif key == "lifetime_scale":
                self.storage.lifetime_scale = float(value)
            elif key == "log_profile":
                if value not in LOG_PROFILES:
                    raise TypeError(f"log_profile must be one of {sorted(LOG_PROFILES)}")
                self.apps.settings.log_profile = str(value)
            elif key in (
                "min_training_images",
                "upscale_max_input_pixels",
                "image_to_image_max_input_pixels",
            ):
                setattr(self.apps.settings, key, int(value))
            elif key == "webhook_segment_bytes":
                self.webhook_sender.segmenting.size = int(value)
            elif key == "webhook_segment_pause_ms":
                self.webhook_sender.segmenting.pause_seconds = float(value) / 1000
            elif key == "webhook_chunked":
                self.webhook_sender.segmenting.chunked = bool(value)
            elif not self.outcomes.configure(key, value):
                raise TypeError(f"unknown setting {key!r}")


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio server here
    assert isinstance(server, asyncio.Server)
    return int(server.sockets[0].getsockname()[1])
