"""The relay that moves committed outbox rows to JetStream, exactly once per event id.

It wakes on `NOTIFY` from committing transactions (low latency) and also polls (so a
missed notification or a crashed peer's rows are still published). Several replicas may
run it: `FOR UPDATE SKIP LOCKED` splits the rows, and `Nats-Msg-Id = event id` makes
JetStream drop any republish inside the stream's duplicate window. A batch is published
back to back (no wait for each ack before the next), in the order it was queued.

`OutboxShortcut` is the fast lane for a writer that just committed its events: it publishes
them at once and marks them published afterwards; the relay stays the guarantee for
anything the shortcut did not get acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext

from contracts.base import Event, encode
from services.kit.crashpoints import crashpoint
from services.kit.db import DB_ERRORS, OUTBOX_CHANNEL
from services.kit.metrics import KitMetrics
from services.kit.waiting import pause

log = logging.getLogger(__name__)
#: How long a publish may wait for room among the unacknowledged ones (JetStream away).
_STALL_SECONDS = 0.5

#: Claim a batch and mark it published; the transaction publishes it before committing (and
#: un-marks what JetStream did not acknowledge). RETURNING comes in no particular order, so
#: it carries the order to publish in: created, then (one transaction's events share that)
#: the rows' places in the table, i.e. the order they were queued.
_CLAIM = """
WITH batch AS (
    SELECT id, created_at, ctid AS place FROM outbox
    WHERE producer = $1 AND published_at IS NULL
    ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED
)
UPDATE outbox o SET published_at = now() FROM batch WHERE o.id = batch.id
RETURNING o.id, o.subject, o.payload, batch.created_at, batch.place
"""


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
        publish_timeout: float = 5.0,
    ):
        self._pool = pool
        self._js = js
        self._producer = producer
        self._metrics = metrics
        self._batch = batch
        self._poll_interval = poll_interval
        self._retention_hours = retention_hours
        self._publish_timeout = publish_timeout
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
        """Publish one batch of pending rows; returns how many were published.

        One transaction: claim the batch and mark it published in one statement (the rows
        stay locked, so other replicas skip them), publish every row without waiting for the
        previous ack (in order: the PUBs leave on one connection in created order), then
        un-mark the ones JetStream did not acknowledge and commit. A crash before the commit
        rolls the marks back and the batch is published again (`Nats-Msg-Id` dedups it).
        """
        async with self._pool.acquire() as conn, conn.transaction():
            rows = sorted(
                await conn.fetch(_CLAIM, self._producer, self._batch),
                key=lambda row: (row["created_at"], row["place"]),
            )
            if not rows:
                return 0
            failed, unsent = await self._publish(rows)
            if failed or unsent:
                await conn.execute(
                    "UPDATE outbox SET published_at = NULL,"
                    " attempts = attempts + (id = ANY($1::uuid[]))::int"
                    " WHERE id = ANY($1::uuid[]) OR id = ANY($2::uuid[])",
                    failed,
                    unsent,
                )
            published = len(rows) - len(failed) - len(unsent)
            if published:
                crashpoint("outbox.after_publish_before_mark")
            return published

    async def _publish(self, rows: list[asyncpg.Record]) -> tuple[list[Any], list[Any]]:
        """Publish rows back to back, then wait for the acks; returns the ids of the rows
        that failed (no ack, or NATS refused the publish) and of the rows not tried after a
        refusal.

        A row that fails is retried by a later flush, after rows behind it in this batch
        went out: consumers never relied on order across events (replicas relaying at once
        interleave too), only on their own monotonic guards.
        """
        acks: list[asyncio.Future[Any]] = []
        refused: list[Any] = []
        for row in rows:
            try:
                acks.append(
                    await self._js.publish_async(
                        row["subject"],
                        bytes(row["payload"]),
                        headers={"Nats-Msg-Id": str(row["id"])},
                        wait_stall=_STALL_SECONDS,
                    )
                )
            except (NatsError, TimeoutError) as exc:  # not sent: neither is the rest
                self._metrics.events_published.labels(row["subject"], "error").inc()
                log.warning("publish failed, will retry: %r", exc)
                refused.append(row["id"])
                break
        if acks:
            _, late = await asyncio.wait(acks, timeout=self._publish_timeout)
            for ack in late:
                ack.cancel()
        failed: list[Any] = []
        for row, ack in zip(rows, acks, strict=False):
            why = _failure(ack)
            if why is None:
                self._metrics.events_published.labels(row["subject"], "ok").inc()
                continue
            self._metrics.events_published.labels(row["subject"], "error").inc()
            if not failed:
                log.warning("publish failed, will retry: %r", why)
            failed.append(row["id"])
        return failed + refused, [row["id"] for row in rows[len(acks) + len(refused) :]]

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


class OutboxShortcut:
    """Publishes events its own process has just committed to the outbox, straight away.

    The relay's road to an event is a wake-up (NOTIFY at commit), then a transaction that
    claims the rows, then the publish. A writer holding events it has just committed can skip
    the first two: `publish()` sends them at once (in call order, `Nats-Msg-Id` = event id)
    and the acknowledged ones are marked published later, many per statement. The outbox keeps
    its guarantee — whatever this does not get acknowledged (a NATS error, a crash, a
    shutdown) stays unpublished and the relay's poll sends it. A writer using this does not
    NOTIFY for those rows; should the relay's poll catch one between its ack and its mark,
    JetStream drops the second copy (same `Nats-Msg-Id`).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        metrics: KitMetrics,
        *,
        publish_timeout: float = 5.0,
        mark_delay: float = 0.02,
    ):
        self._pool = pool
        self._js = js
        self._metrics = metrics
        self._publish_timeout = publish_timeout
        self._mark_delay = mark_delay
        self._acked: list[UUID] = []
        self._wake = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()

    async def publish(self, *events: Event) -> None:
        """Send committed events now, in call order; returns once they are on their way
        (their acks are awaited in the background)."""
        acks: list[asyncio.Future[Any]] = []
        try:
            for event in events:
                acks.append(
                    await self._js.publish_async(
                        event.subject,
                        encode(event),
                        headers={"Nats-Msg-Id": event.event_id},
                        wait_stall=_STALL_SECONDS,  # NATS away: leave it to the relay
                    )
                )
        except (NatsError, TimeoutError) as exc:  # the relay publishes the rest
            log.warning("direct publish failed, the relay will retry: %r", exc)
        if acks:
            task = asyncio.create_task(self._settle(events[: len(acks)], acks))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _settle(self, events: Sequence[Event], acks: list[asyncio.Future[Any]]) -> None:
        _, late = await asyncio.wait(acks, timeout=self._publish_timeout)
        for ack in late:
            ack.cancel()
        for event, ack in zip(events, acks, strict=True):
            if _failure(ack) is None:
                self._metrics.events_published.labels(event.subject, "ok").inc()
                self._acked.append(UUID(event.event_id))
            else:
                self._metrics.events_published.labels(event.subject, "error").inc()
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Mark acknowledged events published until `stop`, then once more after the sends
        in flight (bounded by the publish timeout)."""
        while not stop.is_set():
            await _first(self._wake, stop)
            await pause(stop, self._mark_delay)  # let a busy writer's acks gather
            self._wake.clear()
            await self._mark()
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=self._publish_timeout)
        await self._mark()

    async def _mark(self) -> None:
        while self._acked:
            ids, self._acked = self._acked, []
            try:
                await self._pool.execute(
                    "UPDATE outbox SET published_at = now()"
                    " WHERE id = ANY($1::uuid[]) AND published_at IS NULL",
                    ids,
                )
            except DB_ERRORS as exc:  # left to the relay, whose republish JetStream drops
                log.warning("marking %d published events failed: %s", len(ids), exc)
                return


def _failure(ack: asyncio.Future[Any]) -> BaseException | None:
    """Why a publish was not acknowledged (None: it was)."""
    if ack.cancelled():
        return TimeoutError("no ack from JetStream in time")
    return ack.exception()


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
