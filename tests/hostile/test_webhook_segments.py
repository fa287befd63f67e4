"""FAL's webhooks as a real network delivers them: headers and body in many small TCP
segments with pauses, with a Content-Length or chunked (`tests/hostile/rawhttp.py`), against
the status service in process with its real routes and verifier.

Measured before the fix: every genuine webhook sent in 256-byte segments 20 ms apart was
refused as `forged` (the handler verified what had arrived so far). Guarantees now: the body
is read whole before it is judged, whatever its segmentation; a body that ends early is a 400
`truncated` (never a `forged` 401); over `FAL_WEBHOOK_MAX_BYTES` a 413 even when no length is
declared; headers then nothing (a slow loris) a 408 `read_timeout` after
`FAL_WEBHOOK_READ_TIMEOUT_SECONDS`, and meanwhile genuine webhooks are served; keys rotated
at FAL are fetched at once (no genuine webhook refused in between); unknown fields are kept.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.hostile.jwks import JwksServer
from tests.hostile.rawhttp import send
from tests.hostile.statusapp import MAX_BYTES, metric, running_status

pytestmark = pytest.mark.asyncio(loop_scope="module")


class Service:
    def __init__(self, url: str, jwks: JwksServer) -> None:
        self.url = url
        self.jwks = jwks


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(hostile_db: str, nats_url: str) -> AsyncIterator[Service]:
    async with JwksServer() as jwks, running_status(hostile_db, nats_url, jwks.url) as url:
        yield Service(url, jwks)


def completed(request_id: str, **extra: Any) -> bytes:
    """A training's completion as FAL sends it (about 1.3 KB: several segments)."""
    base = f"https://v3.fal.media/files/penguin/{request_id}"
    payload = {
        "diffusers_lora_file": {"url": f"{base}/pytorch_lora_weights.safetensors", "size": 1},
        "config_file": {"url": f"{base}/config.json", "content_type": "application/json"},
        "debug_preprocessed_output": None,
        "notes": "x" * 900,
    }
    document = {"request_id": request_id, "gateway_request_id": request_id, "status": "OK"}
    return json.dumps({**document, "payload": payload, "error": None, **extra}).encode()


async def recorded(pool: asyncpg.Pool, request_id: str) -> int:
    return int(
        await pool.fetchval("SELECT count(*) FROM fal_webhooks WHERE request_id = $1", request_id)
    )


VARIANTS = [
    {"segment": 256, "pause": 0.02},  # the measured case
    {"segment": 256, "pause": 0.02, "chunked": True},
    {"segment": 7, "pause": 0.002},
    {"segment": 61, "pause": 0.01, "chunked": True},
]


async def test_genuine_webhooks_in_small_pieces_are_all_accepted(
    service: Service, pool: asyncpg.Pool
) -> None:
    forged_before = await metric(service.url, "forged")
    answers = []
    for n in range(12):  # as many as were refused when measured from outside
        request_id = f"req-seg-{n}"
        data = completed(request_id)
        headers = service.jwks.headers(data, request_id)
        answers.append(await send(service.url, data, headers, **VARIANTS[n % len(VARIANTS)]))
    assert [(a.status, a.error) for a in answers] == [(200, None)] * 12
    for n in range(12):
        assert await recorded(pool, f"req-seg-{n}") == 1
    assert await metric(service.url, "forged") == forged_before


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_that_ends_early_is_truncated_not_forged(
    service: Service, pool: asyncpg.Pool, chunked: bool
) -> None:
    request_id = f"req-cut-{chunked}"
    data = completed(request_id)
    before = {r: await metric(service.url, r) for r in ("truncated", "forged")}
    answer = await send(
        service.url, data, service.jwks.headers(data, request_id), chunked=chunked, cut_at=700
    )
    assert answer.status in (None, 400)  # the sender closed its side; it may never hear
    for _ in range(50):
        if await metric(service.url, "truncated") == before["truncated"] + 1:
            break
        await asyncio.sleep(0.05)
    assert await metric(service.url, "truncated") == before["truncated"] + 1
    assert await metric(service.url, "forged") == before["forged"]
    assert await recorded(pool, request_id) == 0


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_over_the_cap_in_pieces_is_refused(
    service: Service, pool: asyncpg.Pool, chunked: bool
) -> None:
    request_id = f"req-huge-{chunked}"
    data = completed(request_id, logs="y" * MAX_BYTES)
    answer = await send(
        service.url, data, service.jwks.headers(data, request_id), segment=512, chunked=chunked
    )
    assert (answer.status, answer.error) == (413, "too_large")
    assert await recorded(pool, request_id) == 0


async def test_unknown_fields_are_accepted_and_kept(service: Service, pool: asyncpg.Pool) -> None:
    """FAL may add fields at any time; a signed body is stored as sent."""
    request_id = "req-unknown-fields"
    data = completed(request_id, queue_metrics={"wait": 1.5}, new_thing=[1, {"a": None}])
    answer = await send(service.url, data, service.jwks.headers(data, request_id))
    assert answer.status == 200
    stored = await pool.fetchval("SELECT body FROM fal_webhooks WHERE request_id = $1", request_id)
    assert json.loads(stored)["new_thing"] == [1, {"a": None}]


async def test_a_slow_loris_gets_408_and_holds_nothing(
    hostile_db: str, nats_url: str, pool: asyncpg.Pool
) -> None:
    """Thirty clients send headers and then nothing. Each is answered 408 once the read
    timeout (3 s here) passes; meanwhile a genuine webhook is accepted, well before."""
    async with (
        JwksServer() as jwks,
        running_status(hostile_db, nats_url, jwks.url, webhook_read_timeout_seconds=3.0) as url,
    ):
        data = completed("req-loris")
        headers = jwks.headers(data, "req-loris")
        started = time.monotonic()
        lorises = [
            asyncio.create_task(send(url, data, headers, segment=64, hold_after_headers=10.0))
            for _ in range(30)
        ]
        await asyncio.sleep(0.3)
        genuine = completed("req-beside-loris")
        answer = await send(url, genuine, jwks.headers(genuine, "req-beside-loris"), pause=0)
        served_after = time.monotonic() - started
        assert answer.status == 200
        assert served_after < 2.5, served_after  # not behind the lorises
        answers = await asyncio.gather(*lorises)
        assert {(a.status, a.error) for a in answers} == {(408, "read_timeout")}
        assert time.monotonic() - started < 7.0  # 3 s, not the 10 s they would hold
        assert await metric(url, "read_timeout") == 30
    assert await recorded(pool, "req-loris") == 0


async def test_keys_rotated_at_fal_are_fetched_at_once(hostile_db: str, nats_url: str) -> None:
    """A webhook signed with a key published a moment ago is accepted, even right after the
    keys were fetched; a forgery still is not, and forgeries cannot hammer the JWKS."""
    async with JwksServer() as jwks, running_status(hostile_db, nats_url, jwks.url) as url:
        first = completed("req-before-rotation")
        assert (await send(url, first, jwks.headers(first, "req-before-rotation"))).status == 200
        jwks.key = Ed25519PrivateKey.generate()  # FAL rotated; our cache is seconds old
        after = completed("req-after-rotation")
        answer = await send(url, after, jwks.headers(after, "req-after-rotation"))
        assert (answer.status, answer.error) == (200, None)
        fetches = jwks.fetches
        rogue = Ed25519PrivateKey.generate()
        forgeries = await asyncio.gather(
            *(send(url, after, jwks.headers(after, "req-x", key=rogue), pause=0) for _ in range(20))
        )
        assert {(a.status, a.error) for a in forgeries} == {(401, "forged")}
        assert jwks.fetches - fetches <= 2  # coalesced, at most one per interval
        family = "aisha_status_jwks_fetches_total"
        refreshed = await metric(url, 'outcome="ok",reason="no_match"', family)
        assert refreshed == jwks.fetches - 1  # every fetch but the first was for a rotation
