"""`python -m benchmarks.least_server PORT`: the least webhook ingest this stack can do.

Scenario 1's target compares the status service with its raw parts one by one (an empty
aiohttp handler, an UPDATE, a publish). This process does the scenario's whole job with
nothing else: aiohttp reads the POST, checks the timestamp and the ED25519 signature with
`cryptography` (the FAL key from the JWKS at `FAL_JWKS_URL`, fetched once), records the
delivery and applies the result in one statement (an INSERT of the body into `fal_webhooks`
and an indexed `UPDATE … RETURNING`, autocommit: durable), publishes the
`TrainingCompleted` event with an awaited JetStream publish and answers 200. No stored
delivery, no replay or ordering guard, no outbox, no metrics, no logs — so the ratio of the
real service to this says what those cost, and this one's rate says what scenario 1's
target asks of the machine. Environment: `DATABASE_URL`, `NATS_URL`, `FAL_JWKS_URL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from datetime import UTC, datetime

import aiohttp
import asyncpg
import msgspec
import nats
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nats.js import JetStreamContext

from contracts import TrainingCompleted
from sandbox.fal import signing

#: Durable, then applied: the delivery (its body, as FAL sent it) and the result, one statement.
_APPLY = """
WITH delivery AS (
    INSERT INTO fal_webhooks (request_id, fal_timestamp, body, processed_at)
    VALUES ($1, $3, $4::text::jsonb, now())
)
UPDATE avatars SET fal_status = 'COMPLETED', diffusers_lora_file_url = $2,
    training_finished_at = now()
WHERE fal_request_id = $1
RETURNING id, user_id, training_attempt
"""


class _Body(msgspec.Struct):
    payload: dict[str, dict[str, str | int]]


class LeastIngest:
    def __init__(self, pool: asyncpg.Pool, js: JetStreamContext, key: Ed25519PublicKey):
        self.pool, self.js, self.key = pool, js, key

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        h = request.headers
        request_id, timestamp = h[signing.HEADER_REQUEST_ID], h[signing.HEADER_TIMESTAMP]
        if abs(time.time() - int(timestamp)) > signing.TIMESTAMP_LEEWAY_SECONDS:
            return web.Response(status=401)
        message = signing.signed_message(request_id, h[signing.HEADER_USER_ID], timestamp, body)
        try:
            self.key.verify(bytes.fromhex(h[signing.HEADER_SIGNATURE]), message)
        except (InvalidSignature, ValueError):
            return web.Response(status=401)
        lora = str(msgspec.json.decode(body, type=_Body).payload["diffusers_lora_file"]["url"])
        row = await self.pool.fetchrow(_APPLY, request_id, lora, int(timestamp), body.decode())
        if row is None:
            return web.Response(status=200)
        event = TrainingCompleted(
            event_id=str(uuid.uuid4()),
            occurred_at=datetime.now(UTC),
            avatar_id=str(row["id"]),
            user_id=row["user_id"],
            attempt=row["training_attempt"],
            request_id=request_id,
            lora_url=lora,
        )
        await self.js.publish(
            TrainingCompleted.subject,
            msgspec.json.encode(event),
            headers={"Nats-Msg-Id": event.event_id},
        )
        return web.Response(status=200)


async def ready(_: web.Request) -> web.Response:
    return web.Response(status=200)


async def serve(port: int) -> None:
    async with aiohttp.ClientSession() as session, session.get(os.environ["FAL_JWKS_URL"]) as r:
        (key,) = signing.public_keys(await r.json())
    pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=10, max_size=10)
    nc = await nats.connect(os.environ["NATS_URL"])
    try:
        app = web.Application()
        app.router.add_post("/fal/webhook", LeastIngest(pool, nc.jetstream(), key).handle)
        app.router.add_get("/readyz", ready)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()  # until SIGTERM ends the process
    finally:
        await nc.close()
        await pool.close()


def main() -> None:
    asyncio.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
