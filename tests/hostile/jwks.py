"""A key of our own and a tiny JWKS endpoint serving it, to sign webhooks the way FAL does."""

from __future__ import annotations

import time
from typing import Self

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sandbox.fal.signing import public_jwk, webhook_headers

USER_ID = "fal-user-1"


class JwksServer:
    """Serves `{"keys": [<our public key>]}` on loopback; `down = True` makes it answer 503."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.down = False
        self.fetches = 0
        self._runner: web.AppRunner | None = None
        self._port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/.well-known/jwks.json"

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", self._jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _jwks(self, _: web.Request) -> web.Response:
        self.fetches += 1
        if self.down:
            return web.json_response({"detail": "unavailable"}, status=503)
        return web.json_response({"keys": [public_jwk(self.key, "k1")]})

    def headers(
        self,
        body: bytes,
        request_id: str = "req-1",
        *,
        timestamp: int | None = None,
        key: Ed25519PrivateKey | None = None,
    ) -> dict[str, str]:
        """FAL's four webhook headers for `body`, signed with our key (or `key`)."""
        ts = int(time.time()) if timestamp is None else timestamp
        return webhook_headers(key or self.key, request_id, USER_ID, body, ts)
