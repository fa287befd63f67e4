"""FAL webhook signatures: ED25519 over `request_id\\nuser_id\\ntimestamp\\nsha256(body)`.

Public keys come from FAL's JWKS, cached for an hour. When no cached key verifies, the keys
are fetched again before the webhook is judged (FAL may have rotated them a moment ago: a
genuine webhook must not be refused because our copy is seconds old). Such refreshes are
coalesced — one fetch that starts after a webhook arrived serves every webhook waiting — and
at most one starts per `min_refresh_seconds`, so forgeries cannot hammer FAL's JWKS; a forged
webhook waits that long at most for its 401. A timestamp outside the tolerance window is a
replay.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
import time
from collections.abc import Mapping

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from prometheus_client import Counter

log = logging.getLogger(__name__)

# Unix seconds as FAL sends them; a bound on the length keeps absurd values (a 400-digit
# "timestamp" overflows float arithmetic) a plain rejection rather than a 500.
_TIMESTAMP = re.compile(r"\d{1,12}", re.ASCII)


class WebhookRejected(Exception):
    """The webhook is forged, stale or malformed; `reason` goes into a metric label."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join([request_id, user_id, timestamp, digest]).encode()


def _decode_key(jwk: object) -> Ed25519PublicKey | None:
    """An Ed25519 key from one JWKS entry; anything else (or a broken key) is skipped."""
    if not isinstance(jwk, Mapping) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        return None
    x = jwk.get("x")
    if not isinstance(x, str):
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "=" * (-len(x) % 4)))
    except ValueError:
        return None


class JwksVerifier:
    def __init__(
        self,
        jwks_url: str,
        tolerance_seconds: int,
        ttl_seconds: float = 3600.0,
        min_refresh_seconds: float = 1.0,
        fetches: Counter | None = None,
    ):
        self._url = jwks_url
        self._tolerance = tolerance_seconds
        self._ttl = ttl_seconds
        self._min_refresh = min_refresh_seconds
        self._keys: list[Ed25519PublicKey] = []
        self._fetched_at = 0.0  # when the last successful fetch *started*
        self._refreshing = asyncio.Lock()
        self._fetches = fetches  # labels: reason (expired, no_match), outcome (ok, error)
        self._client = httpx.AsyncClient(timeout=10.0)

    async def close(self) -> None:
        await self._client.aclose()

    async def _refresh(self) -> None:
        started = time.monotonic()
        response = await self._client.get(self._url)
        response.raise_for_status()
        document = response.json()
        entries = document.get("keys") if isinstance(document, dict) else None
        keys = [_decode_key(k) for k in entries] if isinstance(entries, list) else []
        self._keys = [k for k in keys if k is not None]
        self._fetched_at = started

    async def verify(self, headers: Mapping[str, str], body: bytes) -> tuple[str, int]:
        """Returns (request_id, timestamp) of a genuine, fresh webhook; raises otherwise."""
        arrived = time.monotonic()
        try:
            request_id = headers["X-Fal-Webhook-Request-Id"]
            user_id = headers["X-Fal-Webhook-User-Id"]
            timestamp = headers["X-Fal-Webhook-Timestamp"]
            signature = bytes.fromhex(headers["X-Fal-Webhook-Signature"])
            if not _TIMESTAMP.fullmatch(timestamp):
                raise ValueError("timestamp is not unix seconds")
            ts = int(timestamp)
        except (KeyError, ValueError):
            raise WebhookRejected("malformed") from None
        if abs(time.time() - ts) > self._tolerance:
            raise WebhookRejected("stale")
        try:
            message = signed_message(request_id, user_id, timestamp, body)
        except UnicodeEncodeError:  # undecodable header bytes (aiohttp keeps them escaped)
            raise WebhookRejected("malformed") from None
        if not self._keys or time.monotonic() - self._fetched_at > self._ttl:
            await self._load_since(arrived, "expired")
        if self._matches(signature, message):
            return request_id, ts
        await self._load_since(arrived, "no_match")  # keys may have rotated
        if self._matches(signature, message):
            return request_id, ts
        raise WebhookRejected("forged")

    async def _load_since(self, arrived: float, reason: str) -> None:
        """Keys fetched after `arrived`: one fetch at a time, the waiting webhooks share it,
        and fetches start at least `min_refresh_seconds` apart."""
        async with self._refreshing:
            if self._keys and self._fetched_at >= arrived:
                return  # a fetch that started after this webhook arrived is done
            wait = self._fetched_at + self._min_refresh - time.monotonic()
            if self._keys and wait > 0:
                await asyncio.sleep(wait)
            try:
                await self._refresh()
            except (httpx.HTTPError, ValueError) as exc:
                self._count(reason, "error")
                log.warning("FAL JWKS fetch failed (%s): %s", reason, exc)
                raise WebhookRejected("jwks_unavailable") from exc
            self._count(reason, "ok")
            log.info("FAL JWKS fetched (%s): %d keys", reason, len(self._keys))

    def _count(self, reason: str, outcome: str) -> None:
        if self._fetches is not None:
            self._fetches.labels(reason, outcome).inc()

    def _matches(self, signature: bytes, message: bytes) -> bool:
        for key in self._keys:
            try:
                key.verify(signature, message)
            except InvalidSignature:
                continue
            return True
        return False
