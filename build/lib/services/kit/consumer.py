"""The one consumer loop: pull, bounded concurrency, ack after the handler's commit.

A handler returns normally only after its unit of work committed; then the message is
acked. A handler that raises is nak'ed with a growing delay; after `max_deliver`
deliveries, or at once for a body that does not decode, the message goes to the
dead-letter subject (`aisha.dlq.<subject>`) with a metric and a log line, and the loop
keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts.base import Event
from contracts.jetstream import ConsumerSpec
from contracts.registry import UnknownSubject, dead_letter_subject, decode
from services.kit.logs import log_context
from services.kit.metrics import KitMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    """Which delivery of the message a handler sees; `last` means no retry will follow."""

    number: int
    max_deliver: int

    @property
    def last(self) -> bool:
        return self.number >= self.max_deliver


Handler = Callable[[Any, Delivery], Awaitable[None]]


class Reject(Exception):
    """Raised by a handler for an event that can never succeed: dead-letter it now."""


class EventConsumer:
    """Runs one durable pull consumer with a handler per event type."""

    def __init__(
        self,
        js: JetStreamContext,
        spec: ConsumerSpec,
        handlers: Mapping[type[Event], Handler],
        metrics: KitMetrics,
        *,
        concurrency: int = 16,
        fetch_timeout: float = 1.0,
    ):
        self._js = js
        self._spec = spec
        self._handlers = dict(handlers)
        self._metrics = metrics
        self._concurrency = concurrency
        self._fetch_timeout = fetch_timeout
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def name(self) -> str:
        return self._spec.durable

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch until `stop` is set, then let in-flight handlers finish (no new work)."""
        sub = await self._js.pull_subscribe_bind(
            durable=self._spec.durable, stream=self._spec.stream
        )
        try:
            while not stop.is_set():
                free = self._concurrency - len(self._in_flight)
                if free <= 0:
                    await asyncio.wait(self._in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                try:
                    msgs = await sub.fetch(free, timeout=self._fetch_timeout)
                except (nats.errors.TimeoutError, TimeoutError):
                    continue
                except (nats.errors.ConnectionClosedError, nats.errors.Error, OSError) as exc:
                    log.warning("fetch failed on %s: %s", self.name, exc)
                    await asyncio.sleep(min(self._fetch_timeout, 1.0))
                    continue
                for msg in msgs:
                    task = asyncio.create_task(self._handle(msg))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
        finally:
            if self._in_flight:
                await asyncio.wait(self._in_flight)
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _handle(self, msg: Msg) -> None:
        subject = msg.subject
        try:
            event = decode(subject, msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError, UnknownSubject) as exc:
            await self._dead_letter(msg, "malformed", str(exc))
            return
        handler = self._handlers.get(type(event))
        if handler is None:
            self._metrics.events_consumed.labels(subject, "ignored").inc()
            await msg.ack()
            return
        started = time.perf_counter()
        with log_context(event_id=event.event_id, subject=subject, consumer=self.name):
            try:
                await handler(event, Delivery(msg.metadata.num_delivered, self._spec.max_deliver))
            except Reject as exc:
                await self._dead_letter(msg, "rejected", str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - an event handler's failure must not kill the loop
                await self._retry_or_dead_letter(msg, exc)
                return
            await msg.ack()
        self._metrics.handle_seconds.labels(subject).observe(time.perf_counter() - started)
        self._metrics.events_consumed.labels(subject, "ok").inc()

    async def _retry_or_dead_letter(self, msg: Msg, exc: Exception) -> None:
        delivered = msg.metadata.num_delivered
        if delivered >= self._spec.max_deliver:
            await self._dead_letter(msg, "max_deliver", repr(exc))
            return
        backoff = self._spec.backoff_seconds
        delay = backoff[min(delivered - 1, len(backoff) - 1)]
        log.warning(
            "handler failed (delivery %d/%d), retry in %.1fs: %r",
            delivered,
            self._spec.max_deliver,
            delay,
            exc,
        )
        self._metrics.events_consumed.labels(msg.subject, "retry").inc()
        await msg.nak(delay=delay)

    async def _dead_letter(self, msg: Msg, reason: str, detail: str) -> None:
        meta = msg.metadata
        target = dead_letter_subject(msg.subject)
        headers = {
            "Nats-Msg-Id": f"dlq:{meta.stream}:{meta.sequence.stream}",
            "Aisha-Original-Subject": msg.subject,
            "Aisha-Consumer": self.name,
            "Aisha-Reason": reason,
            "Aisha-Error": detail[:500],
        }
        try:
            await self._js.publish(target, msg.data, headers=headers)
        except (nats.errors.Error, TimeoutError) as exc:
            log.error("dead-letter publish failed, will retry: %s", exc)
            await msg.nak(delay=self._spec.backoff_seconds[-1])
            return
        await msg.term()
        self._metrics.dead_letters.labels(msg.subject, reason).inc()
        self._metrics.events_consumed.labels(msg.subject, "dead_letter").inc()
        log.error("dead-lettered %s -> %s (%s): %s", msg.subject, target, reason, detail[:200])

    async def report_lag(self) -> None:
        """Export pending / ack-pending / redelivered as gauges (called periodically)."""
        info = await self._js.consumer_info(self._spec.stream, self._spec.durable)
        self._metrics.consumer_pending.labels(self.name).set(info.num_pending or 0)
        self._metrics.consumer_ack_pending.labels(self.name).set(info.num_ack_pending or 0)
        self._metrics.consumer_redelivered.labels(self.name).set(info.num_redelivered or 0)
