"""FAL-style signed webhooks, made by the harness, and the JWKS the status service checks.

Signing is `sandbox.fal.signing` (the FAL emulator's own code) with a key the harness holds,
so load can be generated at any rate without running FAL jobs; the status service reads the
matching public key from `FAL_JWKS_URL`, served here on loopback.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks.measure import BenchError
from sandbox.fal.jobs import Job
from sandbox.fal.signing import public_jwk, webhook_headers
from sandbox.fal.webhooks import webhook_body

USER_ID = "bench-user"
TRAINER_APP = "fal-ai/flux-lora-fast-training"


@dataclass(frozen=True)
class SignedWebhook:
    request_id: str
    body: bytes
    headers: dict[str, str]


def training_result(request_id: str) -> dict[str, object]:
    """What FAL's trainers return (the shape the emulator produces)."""
    base = f"https://v3.fal.media/files/bench/{request_id}"
    return {
        "diffusers_lora_file": {
            "url": f"{base}/pytorch_lora_weights.safetensors",
            "content_type": "application/octet-stream",
            "file_name": "pytorch_lora_weights.safetensors",
            "file_size": 89_000_000,
        },
        "config_file": {
            "url": f"{base}/config.json",
            "content_type": "application/json",
            "file_name": "config.json",
            "file_size": 1_200,
        },
    }


class WebhookSigner:
    """Holds an ED25519 key; `start()` serves its JWKS at `jwks_url`."""

    def __init__(self) -> None:
        self._key = Ed25519PrivateKey.generate()
        self._kid = f"bench-{int(time.time())}"
        self._runner: web.AppRunner | None = None
        self.jwks_url = ""

    async def start(self) -> None:
        async def jwks(_: web.Request) -> web.Response:
            return web.json_response({"keys": [public_jwk(self._key, self._kid)]})

        app = web.Application()
        app.router.add_get("/.well-known/jwks.json", jwks)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = int(self._runner.addresses[0][1])
        self.jwks_url = f"http://127.0.0.1:{port}/.well-known/jwks.json"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def completed(self, request_id: str) -> SignedWebhook:
        """A signed "OK" webhook for a finished training, as FAL sends it."""
        job = Job(app_id=TRAINER_APP, arguments={}, request_id=request_id)
        job.result = training_result(request_id)
        body = json.dumps(webhook_body(job)).encode()
        headers = webhook_headers(self._key, request_id, USER_ID, body)
        return SignedWebhook(
            request_id,
            body,
            {"Content-Type": "application/json", "User-Agent": "fal-webhook/bench", **headers},
        )


class Poster:
    """POSTs signed webhooks to one URL over kept-alive loopback connections."""

    def __init__(self, url: str, connections: int = 32):
        self.url = url
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Poster:
        connector = aiohttp.TCPConnector(limit=self._connections)
        self._session = aiohttp.ClientSession(connector=connector)
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, hook: SignedWebhook) -> None:
        assert self._session is not None
        async with self._session.post(self.url, data=hook.body, headers=hook.headers) as response:
            await response.read()
            if response.status != 200:
                raise BenchError(f"webhook {hook.request_id} answered {response.status}")
