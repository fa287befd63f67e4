"""FAL webhook signatures: ED25519 over `request_id\\nuser_id\\ntimestamp\\nsha256(body)`.

Public keys come from FAL's JWKS, cached for an hour and refreshed early when no cached
key verifies (FAL may rotate keys). A timestamp outside the tolerance window is a replay.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class WebhookRejected(Exception):
    """The webhook is forged, stale or malformed; `reason` goes into a metric label."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join([request_id, user_id, timestamp, digest]).encode()


def _decode_key(jwk: Mapping[str, str]) -> Ed25519PublicKey | None:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or "x" not in jwk:
        return None
    raw = base64.urlsafe_b64decode(jwk["x"] + "=" * (-len(jwk["x"]) % 4))
    return Ed25519PublicKey.from_public_bytes(raw)


class JwksVerifier:
    def __init__(self, jwks_url: str, tolerance_seconds: int, ttl_seconds: float = 3600.0):
        self._url = jwks_url
        self._tolerance = tolerance_seconds
        self._ttl = ttl_seconds
        self._keys: list[Ed25519PublicKey] = []
        self._fetched_at = 0.0
        self._client = httpx.AsyncClient(timeout=10.0)

    async def close(self) -> None:
        await self._client.aclose()

    async def _refresh(self) -> None:
        response = await self._client.get(self._url)
        response.raise_for_status()
        keys = [_decode_key(k) for k in response.json().get("keys", [])]
        self._keys = [k for k in keys if k is not None]
        self._fetched_at = time.monotonic()

    async def verify(self, headers: Mapping[str, str], body: bytes) -> tuple[str, int]:
        """Returns (request_id, timestamp) of a genuine, fresh webhook; raises otherwise."""
        try:
            request_id = headers["X-Fal-Webhook-Request-Id"]
            user_id = headers["X-Fal-Webhook-User-Id"]
            timestamp = headers["X-Fal-Webhook-Timestamp"]
            signature = bytes.fromhex(headers["X-Fal-Webhook-Signature"])
            ts = int(timestamp)
        except (KeyError, ValueError):
            raise WebhookRejected("malformed") from None
        if abs(time.time() - ts) > self._tolerance:
            raise WebhookRejected("stale")
        message = signed_message(request_id, user_id, timestamp, body)
        if not self._keys or time.monotonic() - self._fetched_at > self._ttl:
            await self._load()
        if self._matches(signature, message):
            return request_id, ts
        if time.monotonic() - self._fetched_at > 60:  # keys may have rotated
            await self._load()
            if self._matches(signature, message):
                return request_id, ts
        raise WebhookRejected("forged")

    async def _load(self) -> None:
        try:
            await self._refresh()
        except (httpx.HTTPError, ValueError) as exc:
            raise WebhookRejected("jwks_unavailable") from exc

    def _matches(self, signature: bytes, message: bytes) -> bool:
        for key in self._keys:
            try:
                key.verify(signature, message)
            except InvalidSignature:
                continue
            return True
        return False
