"""`POST /fal/webhook`: verify, record durably, then apply; idempotent on request_id.

The body is recorded in `fal_webhooks` before FAL gets its 2xx, so an answer never
outlives a crash; records not yet applied are swept up by the poller loop.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web

from services.status.metrics import StatusMetrics
from services.status.signature import JwksVerifier, WebhookRejected
from services.status.tracking import Tracker

log = logging.getLogger(__name__)


@dataclass
class WebhookReceiver:
    pool: asyncpg.Pool
    verifier: JwksVerifier
    tracker: Tracker
    metrics: StatusMetrics
    max_bytes: int

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/fal/webhook", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        if (request.content_length or 0) > self.max_bytes:
            return self._reject("too_large", 413)
        body = await request.content.read(self.max_bytes + 1)
        if len(body) > self.max_bytes:
            return self._reject("too_large", 413)
        try:
            request_id, timestamp = await self.verifier.verify(request.headers, body)
            document = json.loads(body)
            if not isinstance(document, dict):
                raise ValueError("not an object")
        except WebhookRejected as exc:
            return self._reject(exc.reason, 401)
        except ValueError:
            return self._reject("malformed", 400)
        webhook_id = await self.pool.fetchval(
            "INSERT INTO fal_webhooks (request_id, fal_timestamp, body)"
            " SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM fal_webhooks"
            " WHERE request_id = $1 AND fal_timestamp = $2) RETURNING id",
            request_id,
            timestamp,
            document,
        )
        if webhook_id is None:
            self.metrics.webhooks.labels("replay").inc()
            return web.json_response({"ok": True, "duplicate": True})
        applied = await self.apply(webhook_id, request_id, document)
        self.metrics.webhooks.labels(applied).inc()
        return web.json_response({"ok": True})

    async def apply(self, webhook_id: int, request_id: str, document: dict[str, Any]) -> str:
        """Apply one recorded webhook; returns the outcome label."""
        ok = document.get("status") == "OK"
        payload = document.get("payload") if isinstance(document.get("payload"), dict) else None
        error = None if ok else str(document.get("error") or document.get("payload_error") or "")
        known = await self.pool.fetchval(
            "SELECT 1 FROM avatars WHERE fal_request_id = $1", request_id
        )
        if known is None:
            outcome = "unknown"
        elif await self.tracker.finish(request_id, ok=ok, payload=payload, error=error):
            outcome = "ok"
        else:
            outcome = "duplicate"
        await self.pool.execute(
            "UPDATE fal_webhooks SET processed_at = now() WHERE id = $1", webhook_id
        )
        return outcome

    async def sweep(self) -> int:
        """Apply webhooks recorded but not applied (the process died in between)."""
        rows = await self.pool.fetch(
            "SELECT id, request_id, body FROM fal_webhooks WHERE processed_at IS NULL"
            " AND received_at < now() - interval '30 seconds' ORDER BY received_at LIMIT 100"
        )
        for row in rows:
            await self.apply(row["id"], row["request_id"], row["body"])
        return len(rows)

    def _reject(self, reason: str, status: int) -> web.Response:
        self.metrics.webhooks.labels(reason).inc()
        log.warning("webhook rejected: %s", reason)
        return web.json_response({"ok": False, "error": reason}, status=status)
