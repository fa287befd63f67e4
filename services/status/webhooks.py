"""`POST /fal/webhook`: verify, record durably, then apply; idempotent on request_id.

The body is recorded in `fal_webhooks` before FAL gets its 2xx, so an answer never
outlives a crash; records not yet applied are swept up by the poller loop. A generation's
webhook is answered as soon as it is recorded and applied in the background, because
applying it downloads the result images.

Every record keeps the `?key=` our webhook URL carries (the submission's idempotency key).
A webhook for a request id nobody knows yet, but with a key, is an orphan: its job was
accepted by FAL just before the trainer died. It stays unapplied, so the trainer can adopt
the request id by key and the sweep then applies it; after `ORPHAN_TTL` it is given up.

The common case, the outcome of a running training, is one statement and one commit
(`Tracker.finish_delivery`): store the delivery, apply it, queue the event; the event is
then published at once (`OutboxShortcut`). A delivery that finishes no training (replays,
late deliveries, generations, unknown request ids) changes nothing there and is recorded
under an advisory lock instead, then applied, marking `processed_at` in the applying
transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web

from services.kit.crashpoints import crashpoint
from services.status.generation_tracking import GenerationTracker
from services.status.images import ResultsUnavailable
from services.status.intake import READ_TIMEOUT_SECONDS, BodyRefused, read_body
from services.status.metrics import StatusMetrics
from services.status.signature import JwksVerifier, WebhookRejected
from services.status.training_tracking import Tracker, Webhook

log = logging.getLogger(__name__)
#: How long an orphan's webhook waits for the trainer to adopt its job (the trainer waits
#: TRAINER_RECONCILE_MINUTES, 90 by default, and FAL itself retries a webhook for ~2 h).
ORPHAN_TTL_SECONDS = 3 * 3600
_KEY = re.compile(r"[A-Za-z0-9:_.-]{1,200}")

#: Unapplied records worth applying now: the request id became known, the key-less ones
#: (unknown for good), and orphans past their TTL. Waiting orphans are not re-read.
_SWEEP = """
SELECT w.id, w.request_id, w.body FROM fal_webhooks w
WHERE w.processed_at IS NULL AND w.received_at < now() - interval '30 seconds'
  AND (w.idempotency_key IS NULL
       OR w.received_at < now() - make_interval(secs => $1)
       OR EXISTS (SELECT 1 FROM avatars a WHERE a.fal_request_id = w.request_id)
       OR EXISTS (SELECT 1 FROM generations g WHERE g.fal_request_id = w.request_id))
ORDER BY w.received_at LIMIT 100
"""
#: Who owns a request id (a training, a generation or nobody yet).
_OWNER = """
SELECT EXISTS (SELECT 1 FROM avatars WHERE fal_request_id = $1) AS training,
    EXISTS (SELECT 1 FROM generations WHERE fal_request_id = $1) AS generation
"""


@dataclass
class WebhookReceiver:
    pool: asyncpg.Pool
    verifier: JwksVerifier
    tracker: Tracker
    metrics: StatusMetrics
    max_bytes: int
    generations: GenerationTracker | None = None
    read_timeout_seconds: float = READ_TIMEOUT_SECONDS
    _background: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/fal/webhook", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        try:  # whole, before it is judged: a partial body would fail a genuine signature
            body = await read_body(request, self.max_bytes, self.read_timeout_seconds)
        except BodyRefused as exc:
            return self._reject(exc.reason, exc.status, exc.detail)
        try:
            request_id, timestamp = await self.verifier.verify(request.headers, body)
            document = json.loads(body)
            if not isinstance(document, dict):
                raise ValueError("not an object")
        except WebhookRejected as exc:
            # FAL retries a 5xx: a JWKS outage must delay genuine webhooks, not drop them.
            return self._reject(exc.reason, 503 if exc.reason == "jwks_unavailable" else 401)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
            return self._reject("malformed", 400)
        webhook = Webhook(request_id, timestamp, _stored_text(body, document), _key(request))
        try:
            return await self._ingest(webhook, document)
        except asyncpg.DataError:
            # Signed but not storable (a NUL in a string, NaN): the poller still learns the
            # outcome from FAL, so refusing loses nothing.
            return self._reject("unstorable", 400)

    async def _ingest(self, webhook: Webhook, document: dict[str, Any]) -> web.Response:
        ok, payload, error = _outcome(document)
        done = await self.tracker.finish_delivery(webhook, ok=ok, payload=payload, error=error)
        if done.webhook_id is not None:
            crashpoint("status.after_webhook_recorded")  # recorded and applied, one commit
            self.metrics.webhooks.labels("ok").inc()
            return web.json_response({"ok": True})
        if done.stored:
            return self._replay()
        webhook_id = await self._record(webhook)
        if webhook_id is None:
            return self._replay()
        crashpoint("status.after_webhook_recorded")
        if done.generation and self.generations is not None:
            # A generation's results are downloaded before it is applied: answer FAL now.
            self._apply_later(webhook_id, webhook.request_id, document)
            return web.json_response({"ok": True})
        applied_as = await self.apply(webhook_id, webhook.request_id, document)
        self.metrics.webhooks.labels(applied_as).inc()
        return web.json_response({"ok": True})

    def _replay(self) -> web.Response:
        self.metrics.webhooks.labels("replay").inc()
        return web.json_response({"ok": True, "duplicate": True})

    async def _record(self, webhook: Webhook) -> int | None:
        """Store a delivery once; concurrent replays of it serialize on an advisory lock, so
        the NOT EXISTS check cannot be raced (there is no unique index to lean on)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", webhook.request_id
            )
            webhook_id: int | None = await conn.fetchval(
                "INSERT INTO fal_webhooks (request_id, fal_timestamp, body, idempotency_key)"
                " SELECT $1, $2, $3::text::jsonb, $4 WHERE NOT EXISTS (SELECT 1 FROM fal_webhooks"
                " WHERE request_id = $1 AND fal_timestamp = $2) RETURNING id",
                webhook.request_id,
                webhook.timestamp,
                webhook.body,
                webhook.key,
            )
        return webhook_id

    async def apply(self, webhook_id: int, request_id: str, document: dict[str, Any]) -> str:
        """Apply one recorded webhook; returns the outcome label. The record is marked
        processed in the transaction that applies it (or on its own when nothing applies)."""
        ok, payload, error = _outcome(document)
        owner = await self.pool.fetchrow(_OWNER, request_id)
        if owner["training"]:
            applied = await self.tracker.finish(
                request_id,
                ok=ok,
                payload=payload,
                error=error,
                response=document,
                webhook_id=webhook_id,
            )
            return "ok" if applied else "duplicate"  # marked processed either way
        if self.generations is not None and owner["generation"]:
            applied = await self.generations.finish(
                request_id,
                ok=ok,
                payload=payload,
                error=error,
                response=document,
                webhook_id=webhook_id,
            )
            if applied:
                return "ok"  # marked processed in the applying transaction
            outcome = "duplicate"
        else:
            outcome = await self._unknown(webhook_id)
            if outcome == "orphan_pending":
                return outcome  # stays unprocessed: the sweep applies it once adopted
        await self.pool.execute(
            "UPDATE fal_webhooks SET processed_at = now() WHERE id = $1 AND processed_at IS NULL",
            webhook_id,
        )
        return outcome

    async def _unknown(self, webhook_id: int) -> str:
        """`unknown` (no key: not ours to wait for), `orphan_pending` or `orphan_expired`."""
        row = await self.pool.fetchrow(
            "SELECT idempotency_key IS NOT NULL AS keyed,"
            " received_at < now() - make_interval(secs => $2) AS expired"
            " FROM fal_webhooks WHERE id = $1",
            webhook_id,
            float(ORPHAN_TTL_SECONDS),
        )
        if row is None or not row["keyed"]:
            return "unknown"
        if row["expired"]:
            log.warning("orphan webhook %s was never adopted; giving it up", webhook_id)
            return "orphan_expired"
        return "orphan_pending"

    async def sweep(self) -> int:
        """Apply webhooks recorded but not applied (the process died in between)."""
        rows = await self.pool.fetch(_SWEEP, float(ORPHAN_TTL_SECONDS))
        for row in rows:
            try:
                outcome = await self.apply(row["id"], row["request_id"], row["body"])
            except ResultsUnavailable as exc:  # stays unprocessed: the next sweep retries
                log.warning("webhook %s not applied yet: %s", row["id"], exc)
                continue
            self.metrics.webhooks.labels(outcome).inc()
        return len(rows)

    def _apply_later(self, webhook_id: int, request_id: str, document: dict[str, Any]) -> None:
        task = asyncio.create_task(self._apply_logged(webhook_id, request_id, document))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _apply_logged(
        self, webhook_id: int, request_id: str, document: dict[str, Any]
    ) -> None:
        try:
            outcome = await self.apply(webhook_id, request_id, document)
        except Exception as exc:  # noqa: BLE001 - the record stays unprocessed; the sweep retries
            log.warning("webhook %s not applied yet: %s", webhook_id, exc)
            outcome = "deferred"
        self.metrics.webhooks.labels(outcome).inc()

    async def drain(self, limit_seconds: float) -> None:
        """Let in-flight background applies finish before the pool closes (then cancel)."""
        if self._background:
            _, late = await asyncio.wait(self._background, timeout=limit_seconds)
            for task in late:
                task.cancel()

    def _reject(self, reason: str, status: int, detail: str = "") -> web.Response:
        self.metrics.webhooks.labels(reason).inc()
        log.warning("webhook rejected: %s%s", reason, f" ({detail})" if detail else "")
        return web.json_response({"ok": False, "error": reason}, status=status)


def _key(request: web.Request) -> str | None:
    """The idempotency key of our webhook URL; anything else is not stored."""
    key = request.query.get("key")
    return key if key is not None and _KEY.fullmatch(key) else None


def _outcome(document: dict[str, Any]) -> tuple[bool, dict[str, Any] | None, str | None]:
    """(ok, payload, error) of a webhook body as FAL shapes it."""
    ok = document.get("status") == "OK"
    payload = document.get("payload") if isinstance(document.get("payload"), dict) else None
    error = None if ok else str(document.get("error") or document.get("payload_error") or "")
    return ok, payload, error


def _stored_text(body: bytes, document: dict[str, Any]) -> str:
    """The body as stored (jsonb): the text FAL sent when it is plain UTF-8 (no decode and
    re-encode of what can be a large document), else our own encoding of it."""
    try:
        return body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:  # JSON in UTF-16/32, which json.loads accepts too
        return json.dumps(document)
