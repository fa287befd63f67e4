"""Read-only operator queries over NATS request/reply, answered in JSON by every service.

`aisha.ops.avatar` (an avatar's state and its 18 FAL fields), `aisha.ops.job` (what we know
of a FAL request id: its submission, the avatar or generation, the webhooks received),
`aisha.ops.outbox` (unsent events per producer) and `aisha.ops.lag` (each durable consumer's
backlog). Queries run in a read-only transaction with the service's own role, which may read
every table; answers carry ids, states and FAL's fields, never credentials or prompts.
Errors use the service API's headers (`Nats-Service-Error`, `Nats-Service-Error-Code`):
400 for a malformed request, 404 for an unknown id, 503 when PostgreSQL or JetStream fails.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.micro.request import Handler, Request, ServiceError

from contracts.jetstream import CONSUMERS, STREAM_DLQ
from services.kit.db import DB_ERRORS
from services.kit.micro import Endpoint

log = logging.getLogger(__name__)
Query = Callable[[dict[str, Any]], Awaitable[Any]]
_JSON = {"Content-Type": "application/json"}
_ACQUIRE_SECONDS = 5.0
#: What a FAL request id looks like (a UUID today); it is echoed in a 404's header.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")

#: The seed's 18 FAL fields of an avatar (docs/fal-fields.md), as stored.
FAL_FIELDS = (
    "training_type",
    "fal_request_id",
    "finetune_type",
    "finetune_comment",
    "trigger_phrase",
    "learning_rate",
    "steps",
    "multiresolution_training",
    "subject_crop",
    "create_masks",
    "captioning",
    "webhook_url",
    "fal_response_data",
    "training_logs",
    "training_error",
    "last_status_check",
    "diffusers_lora_file_url",
    "config_file_url",
)
#: Where an avatar's training stands (who owns which column: docs/schema.md).
AVATAR_STATE = (
    "status",
    "fal_status",
    "training_progress",
    "queue_position",
    "training_attempt",
    "submitted_attempt",
    "tracked_attempt",
    "fal_priority",
    "fal_endpoint",
    "photo_count",
    "generation_count",
    "submitted_at",
    "training_started_at",
    "training_finished_at",
    "next_poll_at",
    "poll_count",
    "cost_usd",
    "created_at",
    "updated_at",
)
_GENERATION = (
    "SELECT id, user_id, avatar_id, status::text AS status, fal_status, fal_request_id,"
    " fal_endpoint, num_images, error, cost_usd, created_at, submitted_at, finished_at,"
    " last_status_check, next_poll_at, poll_count,"
    " (SELECT count(*) FROM generated_images i WHERE i.generation_id = g.id) AS images_stored"
    " FROM generations g"
)
_AVATAR = (
    "SELECT id, user_id, "
    + ", ".join(f"{c}::text AS {c}" if c in {"status", "fal_priority"} else c for c in AVATAR_STATE)
    + ", "
    + ", ".join(
        f"{c}::text AS {c}" if c in {"training_type", "finetune_type"} else c for c in FAL_FIELDS
    )
    + " FROM avatars"
)


class OpsQueries:
    """The handlers, over the service's pool and JetStream context."""

    def __init__(self, pool: asyncpg.Pool, js: JetStreamContext):
        self.pool = pool
        self.js = js

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("avatar", '{"id": "<avatar uuid>"}: state, 18 FAL fields', _json(self.avatar)),
            Endpoint("job", '{"request_id": "<FAL request id>"}: the job', _json(self.job)),
            Endpoint("outbox", "unsent outbox rows per producer", _json(self.outbox)),
            Endpoint("lag", "pending and unacked messages per consumer", _json(self.lag)),
        ]

    async def avatar(self, body: dict[str, Any]) -> dict[str, Any]:
        avatar_id = _uuid(body.get("id"))
        row = await self._fetch(f"{_AVATAR} WHERE id = $1", avatar_id)
        if not row:
            raise ServiceError("404", f"no avatar {avatar_id}")
        [avatar] = row
        return {
            "id": avatar["id"],
            "user_id": avatar["user_id"],
            "state": {c: avatar[c] for c in AVATAR_STATE},
            "fal": {c: avatar[c] for c in FAL_FIELDS},
        }

    async def job(self, body: dict[str, Any]) -> dict[str, Any]:
        request_id = body.get("request_id")
        if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
            raise ServiceError("400", "request_id: expected a FAL request id")
        async with self._read() as conn:
            submission = await conn.fetchrow(
                "SELECT kind, subject_id, attempt, endpoint, state, error, created_at,"
                " submitted_at, updated_at FROM fal_submissions WHERE request_id = $1",
                request_id,
            )
            avatars = await conn.fetch(
                f"{_AVATAR} WHERE fal_request_id = $1 OR id = $2",
                request_id,
                _subject(submission, "training"),
            )
            generations = await conn.fetch(
                f"{_GENERATION} WHERE fal_request_id = $1 OR id = $2",
                request_id,
                _subject(submission, "generation"),
            )
            hooks = await conn.fetchrow(
                "SELECT count(*) AS received,"
                " count(*) FILTER (WHERE processed_at IS NULL) AS unprocessed,"
                " max(received_at) AS last_received_at"
                " FROM fal_webhooks WHERE request_id = $1",
                request_id,
            )
        if submission is None and not avatars and not generations:
            raise ServiceError("404", f"no job with request id {request_id}")
        answer: dict[str, Any] = {
            "request_id": request_id,
            "kind": submission["kind"] if submission else "training" if avatars else "generation",
            "submission": dict(submission) if submission else None,
            "webhooks": dict(hooks) if hooks else None,
        }
        if avatars:
            avatar = avatars[0]
            answer["avatar"] = {
                "id": avatar["id"],
                "current_attempt": avatar["fal_request_id"] == request_id,
                **{c: avatar[c] for c in AVATAR_STATE},
            }
        if generations:
            answer["generation"] = dict(generations[0])
        return answer

    async def outbox(self, body: dict[str, Any]) -> dict[str, Any]:
        rows = await self._fetch(
            "SELECT producer, count(*) AS unsent, max(attempts) AS max_attempts,"
            " extract(epoch FROM now() - min(created_at))::float8 AS oldest_age_seconds"
            " FROM outbox WHERE published_at IS NULL GROUP BY producer"
        )
        producers: dict[str, Any] = {
            p: {"unsent": 0, "max_attempts": 0, "oldest_age_seconds": None}
            for p in ("bot", "trainer", "status")
        }
        for row in rows:
            stats = dict(row)
            producers[stats.pop("producer")] = stats
        return {"total": sum(p["unsent"] for p in producers.values()), "producers": producers}

    async def lag(self, body: dict[str, Any]) -> dict[str, Any]:
        consumers: list[dict[str, Any]] = []
        for spec in CONSUMERS:
            entry: dict[str, Any] = {"consumer": spec.durable, "stream": spec.stream}
            try:
                info = await self.js.consumer_info(spec.stream, spec.durable)
            except NotFoundError:
                entry["error"] = "not provisioned"
            else:
                entry.update(
                    num_pending=info.num_pending or 0,
                    num_ack_pending=info.num_ack_pending or 0,
                    num_redelivered=info.num_redelivered or 0,
                    num_waiting=info.num_waiting or 0,
                    delivered_stream_seq=info.delivered.stream_seq if info.delivered else None,
                    ack_floor_stream_seq=info.ack_floor.stream_seq if info.ack_floor else None,
                )
            consumers.append(entry)
        dlq = await self.js.stream_info(STREAM_DLQ.name)
        return {"consumers": consumers, "dead_letters": dlq.state.messages}

    async def _fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self._read() as conn:
            return list(await conn.fetch(query, *args))

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection inside a read-only transaction."""
        async with (
            self.pool.acquire(timeout=_ACQUIRE_SECONDS) as conn,
            conn.transaction(readonly=True),
        ):
            yield conn


def _json(query: Query) -> Handler:
    """Parse the request, run `query`, answer JSON; failures become service API errors
    (raised, so `$SRV.STATS` counts them), with no exception text from the database."""

    async def handle(request: Request) -> None:
        body = _body(request.data)
        try:
            answer = await query(body)
        except DB_ERRORS as exc:
            log.warning("ops %s: database: %s", request.subject, type(exc).__name__)
            raise ServiceError("503", "database unavailable") from exc
        except NatsError as exc:
            log.warning("ops %s: jetstream: %s", request.subject, type(exc).__name__)
            raise ServiceError("503", "jetstream unavailable") from exc
        await request.respond(msgspec.json.encode(answer), headers=_JSON)

    return handle


def _body(data: bytes) -> dict[str, Any]:
    """A JSON object, or nothing; a bare id is taken as `{"id": ...}` for `nats req`."""
    text = data.strip()
    if not text:
        return {}
    if not text.startswith(b"{"):
        return {"id": text.decode(errors="replace"), "request_id": text.decode(errors="replace")}
    try:
        body = msgspec.json.decode(text)
    except msgspec.DecodeError:
        raise ServiceError("400", "expected a JSON object") from None
    if not isinstance(body, dict):
        raise ServiceError("400", "expected a JSON object")
    return body


def _uuid(value: object) -> uuid.UUID:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return uuid.UUID(value)
    raise ServiceError("400", "id: expected an avatar UUID")


def _subject(submission: asyncpg.Record | None, kind: str) -> uuid.UUID | None:
    return submission["subject_id"] if submission and submission["kind"] == kind else None
