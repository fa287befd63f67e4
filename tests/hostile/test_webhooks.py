"""The two doors the outside world knocks on: FAL's webhook (status service, in-process with
its real routes, pool and verifier; FAL's signing replaced by a key of ours behind a JWKS
endpoint) and Telegram's webhook (the bot in webhook mode).

Guarantees: no signature, a wrong one, or a body changed after signing → 401; a timestamp
more than 300 s off → 401; the same delivery twice (even at once) → recorded once; a body
over the cap → 413; the JWKS down → 503 (FAL retries); no error body ever says more than a
short reason code. Telegram's webhook refuses a missing or wrong secret token with 401.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sandbox.embedded import free_port
from sandbox.telegram import TelegramEmulator
from services.bot.app.config import WEBHOOK_PATH, BotConfig
from tests.botkit import BotUnderTest
from tests.hostile.harness import new_user, reply
from tests.hostile.jwks import JwksServer
from tests.hostile.statusapp import MAX_BYTES, common, running_status

pytestmark = pytest.mark.asyncio(loop_scope="module")
INTERNALS = ("Traceback", 'File "', "asyncpg", "Error", "/work", "line ", "services.", "SELECT")


@dataclasses.dataclass
class Status:
    url: str
    jwks: JwksServer
    session: aiohttp.ClientSession

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        async with self.session.post(self.url, data=body, headers=headers) as response:
            return response.status, await response.text()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def status(hostile_db: str, nats_url: str) -> AsyncIterator[Status]:
    async with (
        JwksServer() as jwks,
        aiohttp.ClientSession() as session,
        running_status(hostile_db, nats_url, jwks.url) as url,
    ):
        yield Status(url, jwks, session)


def body(request_id: str = "req-1", **extra: Any) -> bytes:
    return json.dumps({"request_id": request_id, "status": "OK", "payload": {}, **extra}).encode()


def assert_terse(status: int, text: str, reason: str | None = None) -> None:
    """An error body is a reason code and nothing else (no trace, path, SQL, class name)."""
    assert not any(marker in text for marker in INTERNALS), text
    if reason is not None:
        assert json.loads(text) == {"ok": False, "error": reason}, (status, text)


async def recorded(pool: asyncpg.Pool, request_id: str) -> int:
    return int(
        await pool.fetchval("SELECT count(*) FROM fal_webhooks WHERE request_id = $1", request_id)
    )


async def test_a_signature_is_required(status: Status, pool: asyncpg.Pool) -> None:
    data = body("req-sig")
    good = status.jwks.headers(data, "req-sig")
    cases = [
        ({}, "malformed"),
        ({k: v for k, v in good.items() if "Signature" not in k}, "malformed"),
        ({**good, "X-Fal-Webhook-Signature": "zz"}, "malformed"),
        (status.jwks.headers(data, "req-sig", key=Ed25519PrivateKey.generate()), "forged"),
        ({**good, "X-Fal-Webhook-Request-Id": "req-other"}, "forged"),
    ]
    for headers, reason in cases:
        code, text = await status.post(data, headers)
        assert code == 401
        assert_terse(code, text, reason)
    code, text = await status.post(data + b" ", good)  # the body changed after signing
    assert (code, json.loads(text)["error"]) == (401, "forged")
    assert await recorded(pool, "req-sig") == 0
    assert (await status.post(data, good))[0] == 200


@pytest.mark.parametrize(
    ("offset", "accepted"), [(-301, False), (301, False), (-290, True), (290, True)]
)
async def test_the_timestamp_must_be_within_300_seconds(
    status: Status, pool: asyncpg.Pool, offset: int, accepted: bool
) -> None:
    request_id = f"req-ts{offset}"
    data = body(request_id)
    headers = status.jwks.headers(data, request_id, timestamp=int(time.time()) + offset)
    code, text = await status.post(data, headers)
    assert code == (200 if accepted else 401)
    if not accepted:
        assert_terse(code, text, "stale")
    assert await recorded(pool, request_id) == (1 if accepted else 0)


async def test_a_replayed_delivery_is_recorded_once(status: Status, pool: asyncpg.Pool) -> None:
    data = body("req-replay")
    headers = status.jwks.headers(data, "req-replay")
    assert (await status.post(data, headers))[0] == 200
    code, text = await status.post(data, headers)
    assert (code, json.loads(text)) == (200, {"ok": True, "duplicate": True})
    assert await recorded(pool, "req-replay") == 1
    burst = body("req-burst")
    signed = status.jwks.headers(burst, "req-burst")
    answers = await asyncio.gather(*(status.post(burst, signed) for _ in range(30)))
    assert [code for code, _ in answers] == [200] * 30
    assert await recorded(pool, "req-burst") == 1  # concurrent replays too


async def test_a_body_over_the_cap_is_refused(status: Status, pool: asyncpg.Pool) -> None:
    big = body("req-big", logs="x" * MAX_BYTES)
    code, text = await status.post(big, status.jwks.headers(big, "req-big"))
    assert code == 413
    assert_terse(code, text, "too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length to trust
        for _ in range(8):
            yield b"x" * 1024

    headers = status.jwks.headers(b"", "req-chunked")
    async with status.session.post(status.url, data=chunks(), headers=headers) as response:
        assert response.status == 413
        assert_terse(response.status, await response.text(), "too_large")
    assert await recorded(pool, "req-big") + await recorded(pool, "req-chunked") == 0


async def test_bodies_signed_but_unusable_are_refused_tersely(
    status: Status, pool: asyncpg.Pool
) -> None:
    """Genuinely signed, yet not JSON, not an object, or not storable: 400, never 500."""
    for data in (
        b"not json",
        b"[1, 2, 3]",
        b'{"request_id": "req-bad", "logs": "\\u0000"}',
        b'{"request_id": "req-bad", "progress": NaN}',
        b"[" * 1500 + b"]" * 1500,  # deeper than Python's recursion limit
        b"\xff\xfe garbage",
    ):
        code, text = await status.post(data, status.jwks.headers(data, "req-bad"))
        assert code == 400, (data[:40], code, text)
        assert_terse(code, text)
    headers = {**status.jwks.headers(body(), "req-ts"), "X-Fal-Webhook-Timestamp": "9" * 400}
    code, text = await status.post(body(), headers)
    assert (code, json.loads(text)["error"]) == (401, "malformed")
    assert await recorded(pool, "req-bad") == 0


async def test_other_paths_and_methods_reveal_nothing(status: Status) -> None:
    base = status.url.rsplit("/fal/", 1)[0]
    for method, path in (("GET", "/fal/webhook"), ("POST", "/admin"), ("GET", "/../../etc")):
        async with status.session.request(method, base + path) as response:
            assert response.status in (404, 405)
            assert_terse(response.status, await response.text())


async def test_jwks_outage_asks_fal_to_retry(hostile_db: str, nats_url: str) -> None:
    """Keys cannot be fetched → 503, which FAL retries, not 401, which it would drop."""
    async with JwksServer() as jwks, running_status(hostile_db, nats_url, jwks.url) as url:
        jwks.down = True
        status = Status(url, jwks, aiohttp.ClientSession())
        try:
            data = body("req-outage")
            code, text = await status.post(data, jwks.headers(data, "req-outage"))
        finally:
            await status.session.close()
        assert code == 503
        assert_terse(code, text, "jwks_unavailable")


async def test_telegram_webhook_refuses_a_missing_or_wrong_secret(
    emu: TelegramEmulator, hostile_db: str, nats_url: str
) -> None:
    port = free_port()
    config = BotConfig(
        common=common("bot", hostile_db, nats_url, port),
        telegram_bot_token="123456:hostile-webhook-token",
        telegram_api_url=emu.base_url,
        telegram_mode="webhook",
        telegram_webhook_secret="the-right-secret-123",
        public_base_url=f"http://127.0.0.1:{port}",
    )
    bot = BotUnderTest(config)
    await bot.start()
    try:
        uid = await new_user(emu, "Hooked", "en")  # genuine updates arrive with the secret
        update = {
            "update_id": 999_001,
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "chat": {"id": uid, "type": "private"},
                "from": {"id": uid, "is_bot": False, "first_name": "Forger"},
                "text": "/delete_me",
            },
        }
        url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
        async with aiohttp.ClientSession() as session:
            for secret in (None, "wrong-secret-1234", "the-right-secret-12"):
                headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret else {}
                async with session.post(url, json=update, headers=headers) as response:
                    assert response.status == 401
                    assert_terse(response.status, await response.text())
        await asyncio.sleep(0.3)
        assert not [m for m in await emu.bot_messages(uid) if "Delete all your data" in m["text"]]
        await emu.send_command(uid, "help")
        await reply(emu, uid, "How it works")
    finally:
        await bot.stop()
