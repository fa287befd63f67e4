"""The relay that moves committed outbox rows to JetStream, exactly once per event id.

It wakes on `NOTIFY` from committing transactions (low latency) and also polls (so a
missed notification or a crashed peer's rows are still published). Several replicas may
run it: `FOR UPDATE SKIP LOCKED` splits the rows, and `Nats-Msg-Id = event id` makes
JetStream drop any republish inside the stream's duplicate window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext

from services.kit.crashpoints import crashpoint
from services.kit.db import DB_ERRORS, OUTBOX_CHANNEL
from services.kit.metrics import KitMetrics

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        producer: str,
        metrics: KitMetrics,
        *,
        batch: int = 200,
        poll_interval: float = 1.0,
        retention_hours: int = 24,
    ):
        self._pool = pool
        self._js = js
        self._producer = producer
        self._metrics = metrics
        self._batch = batch
        self._poll_interval = poll_interval
        self._retention_hours = retention_hours
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == self._producer:
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until `stop`. Outlives NATS and PostgreSQL outages (a dead relay would
        strand every committed event) and listens again once the database is back."""
        next_housekeeping = 0.0
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self._listen()
                    published = await self.flush_once()
                except Exception as exc:  # noqa: BLE001 - the relay must outlive any outage
                    log.warning("outbox relay paused: %s", exc)
                    published = 0
                    await asyncio.sleep(self._poll_interval)
                if published >= self._batch:
                    continue
                if loop.time() >= next_housekeeping:
                    next_housekeeping = loop.time() + 15.0
                    with contextlib.suppress(*DB_ERRORS):
                        await self._housekeeping()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_interval):
                        await _first(self._wake, stop)
        finally:
            await self._unlisten()

    async def _listen(self) -> None:
        """Hold a LISTEN connection; replace it when a database restart closed it."""
        if _usable(self._listener):
            return
        await self._unlisten()
        conn: asyncpg.Connection = await self._pool.acquire()
        self._listener = conn
        await conn.add_listener(OUTBOX_CHANNEL, self._on_notify)

    async def _unlisten(self) -> None:
        """Give the LISTEN connection back to the pool whatever state it is in (a pool
        never given it back would hang the shutdown in `Pool.close`)."""
        listener, self._listener = self._listener, None
        if listener is None or _released(listener):
            return
        if not listener.is_closed():
            with contextlib.suppress(*DB_ERRORS):
                await listener.remove_listener(OUTBOX_CHANNEL, self._on_notify)
        try:
            await self._pool.release(listener, timeout=5.0)
        except DB_ERRORS:
            listener.terminate()
        except TimeoutError:
            listener.terminate()

    async def flush_once(self) -> int:
        """Publish one batch of pending rows; returns how many were published."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, subject, payload FROM outbox "
                "WHERE producer = $1 AND published_at IS NULL "
                "ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                self._producer,
                self._batch,
            )
            done = []
            try:
                for row in rows:
                    await self._js.publish(
                        row["subject"],
                        bytes(row["payload"]),
                        headers={"Nats-Msg-Id": str(row["id"])},
                    )
                    self._metrics.events_published.labels(row["subject"], "ok").inc()
                    done.append(row["id"])
            except (NatsError, TimeoutError) as exc:
                self._metrics.events_published.labels(rows[len(done)]["subject"], "error").inc()
                log.warning("publish failed, will retry: %s", exc)
                await conn.execute(
                    "UPDATE outbox SET attempts = attempts + 1 WHERE id = $1", rows[len(done)]["id"]
                )
            if done:
                crashpoint("outbox.after_publish_before_mark")
                await conn.execute(
                    "UPDATE outbox SET published_at = now() WHERE id = ANY($1::uuid[])", done
                )
            return len(done)

    async def _housekeeping(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM outbox WHERE producer = $1 AND published_at < now() - make_interval("
                "hours => $2)",
                self._producer,
                self._retention_hours,
            )
            backlog = await conn.fetchrow(
                "SELECT count(*) AS rows, coalesce(extract(epoch FROM now() - min(created_at)),"
                " 0)::float8 AS oldest FROM outbox WHERE producer = $1 AND published_at IS NULL",
                self._producer,
            )
        self._metrics.outbox_backlog.set(backlog["rows"])
        self._metrics.outbox_oldest.set(backlog["oldest"])


def _released(conn: asyncpg.Connection) -> bool:
    """A pooled connection that died was taken back by the pool: its proxy is detached."""
    try:
        conn.is_closed()
    except asyncpg.InterfaceError:
        return True
    return False


def _usable(conn: asyncpg.Connection | None) -> bool:
    return conn is not None and not _released(conn) and not conn.is_closed()


async def _first(*events: asyncio.Event) -> None:
    """Return when any of the events is set."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
