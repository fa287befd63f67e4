"""asyncpg pool running as the service's DB role, and a unit of work with an outbox.

Every state change and the events it causes are written in one transaction: the events
go to the `outbox` table and a relay publishes them later, so a crash between commit and
publish loses nothing. Consumers claim each event id in `processed_events` inside the
same transaction as their effects, which makes redelivery harmless.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self
from uuid import UUID

import asyncpg

from contracts.base import Event, encode

OUTBOX_CHANNEL = "aisha_outbox"
#: What a database outage or restart raises: server errors, a closed connection, a
#: connection caught mid-operation, and the socket errors of a server that is not there.
DB_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
)


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _release(conn: asyncpg.Connection) -> None:
    """Nothing to send when a connection goes back to the pool.

    asyncpg still rolls back a transaction left open and forgets listeners itself; its
    default reset query (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`) would
    cost one more round trip on every release — a third of a one-statement `pool.fetchval` —
    and undo nothing our sessions do: the role is a startup setting, advisory locks are
    transaction-scoped, the outbox relay UNLISTENs itself. So: no session-level `SET`,
    `LISTEN`, session advisory lock or `WITH HOLD` cursor on a pooled connection.
    """


async def create_pool(
    url: str, role: str | None, *, min_size: int = 1, max_size: int = 10
) -> asyncpg.Pool:
    """A pool whose sessions run as `role`, so grants enforce one writer per column.

    Two ways to log in, the same code: in production the URL names the service's own login
    (`aisha_bot_login`, a member of `aisha_bot` and nothing else: `services.kit.logins`), and
    the role setting only names the role it already acts as; a login wired to another
    service's role is refused at connect. In the sandbox and the tests the URL is the
    superuser's and the setting is what confines the session to the role.
    The role is a startup setting, so it survives any `RESET ALL` (see `_release` for why
    the pool sends no reset query between uses).
    """
    settings = {"application_name": f"aisha-{role or 'admin'}"}
    if role:
        settings["role"] = role
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        server_settings=settings,
        init=_init_connection,
        reset=_release,
    )
    assert pool is not None
    return pool


class UnitOfWork:
    """One transaction: claim the incoming event, change state, queue outgoing events."""

    def __init__(self, pool: asyncpg.Pool, producer: str):
        self._pool = pool
        self._producer = producer
        self._events: list[Event] = []
        self._conn: asyncpg.Connection | None = None
        self._tx: Any = None

    @property
    def conn(self) -> asyncpg.Connection:
        if self._conn is None:
            raise RuntimeError("unit of work is not open")
        return self._conn

    async def __aenter__(self) -> Self:
        self._conn = await self._pool.acquire()
        self._tx = self._conn.transaction()
        await self._tx.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if et is None:
                await self._flush_events()
                await self._tx.commit()
            else:
                await self._tx.rollback()
        finally:
            conn, self._conn = self._conn, None
            self._events.clear()
            await self._pool.release(conn)

    async def claim(self, consumer: str, event_id: str) -> bool:
        """False when `consumer` already handled this event: the caller skips its effects."""
        row = await self.conn.fetchval(
            "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING RETURNING 1",
            consumer,
            UUID(event_id),
        )
        return row is not None

    def publish(self, *events: Event) -> None:
        """Queue events; they reach the outbox only if the transaction commits."""
        self._events.extend(events)

    async def _flush_events(self) -> None:
        if not self._events:
            return
        await insert_outbox(self.conn, self._producer, self._events)


_INSERT_OUTBOX = """
WITH written AS (
    INSERT INTO outbox (id, producer, subject, payload)
    SELECT e.id, $2, e.subject, e.payload FROM unnest($1::uuid[], $3::text[], $4::bytea[])
        AS e(id, subject, payload)
    ON CONFLICT (id) DO NOTHING
)
SELECT pg_notify($5, $2)
"""


async def insert_outbox(conn: asyncpg.Connection, producer: str, events: Sequence[Event]) -> None:
    """Write events to the outbox and wake the relay when the transaction commits.

    One statement, so one round trip on every unit of work that publishes (the data-modifying
    CTE always runs in full; the NOTIFY is delivered at commit, like the rows).
    """
    await conn.execute(
        _INSERT_OUTBOX,
        [UUID(e.event_id) for e in events],
        producer,
        [e.subject for e in events],
        [encode(e) for e in events],
        OUTBOX_CHANNEL,
    )
