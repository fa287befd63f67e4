"""Signed webhook delivery with FAL's retry policy and the webhook faults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sandbox.fal.jobs import Clock, Job
from sandbox.fal.signing import public_jwk, webhook_headers

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Segmenting:
    """How a webhook body goes on the wire. An *assumed* behaviour, not a documented one of
    FAL: any real network may deliver a body in several TCP segments, and a receiver that
    verified what had arrived so far refused every genuine webhook while our tests (one
    write per body) passed. `size` 0 writes the body at once; otherwise `size`-byte writes
    `pause_seconds` apart (real seconds, not scaled by `time_scale`), with a Content-Length
    or, with `chunked`, as HTTP chunks without one."""

    size: int = 0
    pause_seconds: float = 0.02
    chunked: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Segmenting:
        """`FAL_EMU_WEBHOOK_SEGMENT_BYTES`, `FAL_EMU_WEBHOOK_SEGMENT_PAUSE_MS`,
        `FAL_EMU_WEBHOOK_CHUNKED` (so a whole suite can be run segmenting)."""
        return cls(
            size=int(env.get("FAL_EMU_WEBHOOK_SEGMENT_BYTES", "0")),
            pause_seconds=float(env.get("FAL_EMU_WEBHOOK_SEGMENT_PAUSE_MS", "20")) / 1000,
            chunked=env.get("FAL_EMU_WEBHOOK_CHUNKED", "").lower() in {"1", "true", "yes", "on"},
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "webhook_segment_bytes": self.size,
            "webhook_segment_pause_ms": self.pause_seconds * 1000,
            "webhook_chunked": self.chunked,
        }

    async def pieces(self, body: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(body), self.size):
            if start:
                await asyncio.sleep(self.pause_seconds)
            yield body[start : start + self.size]


@dataclass(slots=True)
class Delivery:
    """One HTTP attempt to deliver a webhook."""

    request_id: str
    url: str
    attempt: int
    copy: int
    sent_at: float
    headers: dict[str, str]
    body: str
    status: int | None = None
    error: str | None = None
    faults: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def webhook_body(job: Job) -> dict[str, Any]:
    """FAL's webhook JSON for a finished job."""
    body: dict[str, Any] = {"request_id": job.request_id, "gateway_request_id": job.request_id}
    if job.failure is None:
        body.update(status="OK", payload=job.result, error=None, payload_error=None)
    else:
        body.update(
            status="ERROR",
            payload={"detail": job.failure.detail},
            error=job.failure.message,
            payload_error=None,
        )
    return body


class WebhookSender:
    """Signs with an ED25519 key (published as JWKS) and retries like FAL: 10 retries, backoff."""

    def __init__(
        self,
        clock: Clock,
        *,
        user_id: str,
        retries: int = 10,
        backoff_seconds: float = 7.0,
        timeout_seconds: float = 15.0,
        late_seconds: float = 30.0,
        segmenting: Segmenting | None = None,
    ) -> None:
        self._clock = clock
        self.segmenting = Segmenting() if segmenting is None else segmenting
        self._key = Ed25519PrivateKey.generate()
        self._rogue_key = Ed25519PrivateKey.generate()
        self.kid = f"sandbox-{int(time.time())}"
        self.user_id = user_id
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self.timeout_seconds = timeout_seconds
        self.late_seconds = late_seconds
        self.deliveries: list[Delivery] = []
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sent_event = asyncio.Event()

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(self._key, self.kid)]}

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(trust_env=False)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    def dispatch(self, job: Job) -> None:
        """Schedule the webhook(s) for a finished job according to its faults."""
        if not job.webhook_url or "webhook_lost" in job.faults:
            return
        self._spawn(self._deliver_job(job))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver_job(self, job: Job) -> None:
        body = json.dumps(webhook_body(job)).encode()
        faults = sorted(job.faults)
        late = job.faults.get("webhook_late")
        if late is not None:
            await self._clock.sleep(float(late.param("seconds", self.late_seconds)))
        reorder = job.faults.get("webhook_out_of_order")
        if reorder is not None:
            await self._wait_for_other_delivery(float(reorder.param("seconds", self.late_seconds)))
        await self._deliver(job, body, copy=1, faults=faults)
        duplicate = job.faults.get("webhook_duplicate") or reorder
        if duplicate is not None:
            await self._clock.sleep(
                float(duplicate.param("replay_seconds", 0.0 if reorder is None else 1.0))
            )
            await self._deliver(job, body, copy=2, faults=faults)

    async def _wait_for_other_delivery(self, max_seconds: float) -> None:
        before = len(self.deliveries)
        deadline = time.monotonic() + self._clock.seconds(max_seconds)
        while len(self.deliveries) == before and time.monotonic() < deadline:
            self._sent_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._sent_event.wait(), max(0.0, deadline - time.monotonic())
                )

    def _headers(self, job: Job, body: bytes) -> dict[str, str]:
        key = self._rogue_key if "webhook_bad_signature" in job.faults else self._key
        stale = job.faults.get("webhook_stale_timestamp")
        timestamp = None if stale is None else int(time.time()) - int(stale.param("seconds", 600))
        headers = webhook_headers(key, job.request_id, self.user_id, body, timestamp)
        return {"Content-Type": "application/json", "User-Agent": "fal-webhook/sandbox", **headers}

    async def _deliver(self, job: Job, body: bytes, *, copy: int, faults: list[str]) -> None:
        assert job.webhook_url is not None
        for attempt in range(1, self.retries + 2):
            headers = self._headers(job, body)
            record = Delivery(
                job.request_id,
                job.webhook_url,
                attempt,
                copy,
                time.time(),
                headers,
                body.decode(),
                faults=faults,
            )
            self.deliveries.append(record)
            await self._post(record, body)
            self._sent_event.set()
            if record.ok:
                return
            if attempt <= self.retries:
                await self._clock.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        log.warning(
            "webhook for %s to %s gave up after %d attempts",
            job.request_id,
            job.webhook_url,
            self.retries + 1,
        )

    async def _post(self, record: Delivery, body: bytes) -> None:
        assert self._session is not None, "webhook sender not started"
        timeout = aiohttp.ClientTimeout(total=self.timeout_seconds)
        data: bytes | AsyncIterator[bytes] = body
        headers = record.headers
        wire = self.segmenting
        if wire.size > 0 and (wire.chunked or len(body) > wire.size):
            data = wire.pieces(body)  # aiohttp writes each piece as it comes (TCP_NODELAY)
            if not wire.chunked:  # a declared length keeps aiohttp from chunking
                headers = {**headers, "Content-Length": str(len(body))}
        try:
            async with self._session.post(
                record.url, data=data, headers=headers, timeout=timeout
            ) as resp:
                await resp.read()
                record.status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            record.error = f"{type(exc).__name__}: {exc}"
