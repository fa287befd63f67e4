"""FAL webhook signatures: ED25519 over `request_id\\nuser_id\\ntimestamp\\nsha256_hex(body)`.

Pure helpers, shared by the emulator (signing) and tests (verification).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HEADER_REQUEST_ID = "X-Fal-Webhook-Request-Id"
HEADER_USER_ID = "X-Fal-Webhook-User-Id"
HEADER_TIMESTAMP = "X-Fal-Webhook-Timestamp"
HEADER_SIGNATURE = "X-Fal-Webhook-Signature"
TIMESTAMP_LEEWAY_SECONDS = 300


def signed_message(request_id: str, user_id: str, timestamp: str, body: bytes) -> bytes:
    """The exact bytes FAL signs."""
    parts = [request_id, user_id, timestamp, hashlib.sha256(body).hexdigest()]
    return "\n".join(parts).encode("utf-8")


def sign(key: Ed25519PrivateKey, request_id: str, user_id: str, timestamp: str, body: bytes) -> str:
    """Hex ED25519 signature, as sent in `X-Fal-Webhook-Signature`."""
    return key.sign(signed_message(request_id, user_id, timestamp, body)).hex()


def webhook_headers(
    key: Ed25519PrivateKey, request_id: str, user_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The four FAL webhook headers for one delivery."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        HEADER_REQUEST_ID: request_id,
        HEADER_USER_ID: user_id,
        HEADER_TIMESTAMP: ts,
        HEADER_SIGNATURE: sign(key, request_id, user_id, ts, body),
    }


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def public_jwk(key: Ed25519PrivateKey, kid: str) -> dict[str, str]:
    """The public half of `key` as an OKP/Ed25519 JWK."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
        "kid": kid,
        "x": _b64url(raw),
    }


def public_keys(jwks: Mapping[str, Any]) -> list[Ed25519PublicKey]:
    """Every Ed25519 key in a JWKS document."""
    keys: list[Ed25519PublicKey] = []
    for jwk in jwks.get("keys", []):
        if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519" and "x" in jwk:
            keys.append(Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk["x"])))
    return keys


def verify(
    jwks: Mapping[str, Any],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    leeway: int = TIMESTAMP_LEEWAY_SECONDS,
) -> bool:
    """True when the headers carry a fresh signature over `body` by a key in `jwks`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        request_id = lowered[HEADER_REQUEST_ID.lower()]
        user_id = lowered[HEADER_USER_ID.lower()]
        timestamp = lowered[HEADER_TIMESTAMP.lower()]
        signature = bytes.fromhex(lowered[HEADER_SIGNATURE.lower()])
        ts = int(timestamp)
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > leeway:
        return False
    message = signed_message(request_id, user_id, timestamp, body)
    for public in public_keys(jwks):
        try:
            public.verify(signature, message)
        except InvalidSignature:
            continue
        return True
    return False
