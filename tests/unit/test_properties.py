"""Properties that must hold for any input (hypothesis, bounded example counts).

* Callback data: every factory in services.bot round-trips through Telegram's 64
  bytes, and any string either unpacks or fails with TypeError/ValueError (the only errors
  aiogram's filter turns into "not this button").
* FAL log parsing: never raises, stays in 0..99, never goes below the previous value.
* Webhooks: the verifier rejects anything unsigned with WebhookRejected only; a body we
  sign is accepted, a byte changed after signing is not; the HTTP handler answers random
  bodies and headers with 400/401/413, never 500, and accepts every signed JSON object.

The webhook properties run against real servers (a JWKS endpoint, PostgreSQL, NATS KV) on
this test's event loop while hypothesis drives examples from a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import time
import types
import typing
import uuid
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any, TypeVar

import aiohttp
import nats
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic.fields import FieldInfo

from services.kit.broker import provision
from services.kit.db import create_pool
from services.status.metrics import StatusMetrics
from services.status.progress import format_logs, percent_from_logs
from services.status.signature import JwksVerifier, WebhookRejected
from services.status.training_tracking import Tracker
from services.status.webhooks import WebhookReceiver
from tests.hostile.harness import callback_factories
from tests.hostile.jwks import JwksServer

T = TypeVar("T")
FACTORIES = callback_factories()
QUICK = settings(max_examples=150, deadline=None)
HTTP = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
HEADER_TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)
HEADERS = ("X-Fal-Webhook-Request-Id", "X-Fal-Webhook-User-Id", "X-Fal-Webhook-Timestamp")
SIGNATURE = "X-Fal-Webhook-Signature"
REQUEST_ID = st.text("abcdef0123456789-", min_size=1, max_size=36)
# JSON PostgreSQL can store: no NUL in strings, finite numbers
JSON_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | JSON_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(JSON_TEXT, inner, max_size=4),
    max_leaves=20,
)  # fmt: skip


# -- callback data -------------------------------------------------------------------------


def _strategy(field: FieldInfo) -> st.SearchStrategy[Any]:
    """Values pydantic accepts for one CallbackData field (constraints included)."""
    annotation, optional = field.annotation, False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional, annotation = True, args[0]
        else:
            break
    limits = {
        key: getattr(m, key)
        for m in field.metadata
        for key in ("ge", "le", "pattern")
        if getattr(m, key, None) is not None
    }
    if typing.get_origin(annotation) is typing.Literal:
        base: st.SearchStrategy[Any] = st.sampled_from(typing.get_args(annotation))
    elif isinstance(annotation, type) and issubclass(annotation, Enum):
        base = st.sampled_from(list(annotation))
    elif annotation is uuid.UUID:
        base = st.uuids()
    elif annotation is bool:
        base = st.booleans()
    elif annotation is int:
        base = st.integers(limits.get("ge", -(2**63)), limits.get("le", 2**63 - 1))
    elif "pattern" in limits:
        base = st.from_regex(limits["pattern"], fullmatch=True)
    else:
        base = st.text(st.characters(blacklist_characters=":"), max_size=16)
    return st.none() | base if optional else base


def test_there_are_factories_to_check() -> None:
    assert {"menu", "avatar", "training", "privacy", "keep"} <= {c.__prefix__ for c in FACTORIES}


@QUICK
@given(st.data())
def test_every_callback_factory_round_trips_within_64_bytes(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(FACTORIES))
    values = {name: data.draw(_strategy(f), label=name) for name, f in cls.model_fields.items()}
    instance = cls(**values)
    packed = instance.pack()
    assert len(packed.encode()) <= 64
    assert cls.unpack(packed) == instance


@QUICK
@given(st.data())
def test_random_callback_strings_only_fail_as_aiogram_expects(data: st.DataObject) -> None:
    cls = data.draw(st.sampled_from(FACTORIES))
    tail = data.draw(st.lists(st.text(max_size=40), max_size=4))
    raw = data.draw(st.sampled_from([":".join([cls.__prefix__, *tail]), "".join(tail)]))
    try:
        parsed = cls.unpack(raw)
    except (TypeError, ValueError):
        return
    assert isinstance(parsed, cls)


# -- FAL logs --------------------------------------------------------------------------------

MESSAGES = st.one_of(
    st.text(max_size=60),
    st.builds("Step {}/{}".format, st.integers(-5, 10**12), st.integers(-5, 10**12)),
    st.builds("step: {} of {}".format, st.integers(0, 3000), st.integers(0, 3000)),
    st.builds("{}%".format, st.floats(allow_nan=True)),
    st.builds("{} %".format, st.integers(-1000, 1000)),
)
ENTRY = st.one_of(
    st.fixed_dictionaries({"message": MESSAGES}, optional={"timestamp": JSON, "level": JSON}),
    st.dictionaries(st.text(max_size=8), JSON, max_size=3),
    JSON,  # FAL's JSON is not ours: a log entry may be anything
)


@QUICK
@given(st.lists(ENTRY, max_size=12), st.lists(ENTRY, max_size=4))
def test_percent_from_logs_is_bounded_and_grows_with_more_lines(
    logs: list[Any], more: list[Any]
) -> None:
    result = percent_from_logs(logs)
    assert result is None or 0 <= result <= 99
    longer = percent_from_logs(logs + more)
    assert result is None or (longer is not None and longer >= result)
    assert len(format_logs(logs, limit_chars=500)) <= 500


# -- webhook signatures ------------------------------------------------------------------------


def _drive(loop: asyncio.AbstractEventLoop, call: Callable[[], Awaitable[T]]) -> T:
    """Run one example's coroutine on the test's loop (hypothesis runs in a worker thread)."""
    return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=30)  # type: ignore[arg-type]


def _random_headers() -> st.SearchStrategy[dict[str, str]]:
    fresh = st.integers(-400, 400).map(lambda d: str(int(time.time()) + d))
    absurd = st.integers(-(10**400), 10**400).map(str)  # beyond float range
    return st.fixed_dictionaries(
        {},
        optional={
            **{name: HEADER_TEXT | fresh | absurd for name in HEADERS},
            SIGNATURE: HEADER_TEXT | st.binary(min_size=64, max_size=64).map(bytes.hex),
        },
    )


async def test_the_verifier_accepts_our_signature_and_rejects_everything_else() -> None:
    loop = asyncio.get_running_loop()
    async with JwksServer() as jwks:
        verifier = JwksVerifier(jwks.url, tolerance_seconds=300, min_refresh_seconds=0.0)
        try:

            @HTTP
            @given(headers=_random_headers(), body=st.binary(max_size=200))
            def random_input(headers: dict[str, str], body: bytes) -> None:
                with pytest.raises(WebhookRejected):
                    _drive(loop, lambda: verifier.verify(headers, body))

            @HTTP
            @given(request_id=REQUEST_ID, body=st.binary(max_size=200), skew=st.integers(-290, 290))
            def signed(request_id: str, body: bytes, skew: int) -> None:
                stamp = int(time.time()) + skew
                headers = jwks.headers(body, request_id, timestamp=stamp)
                assert _drive(loop, lambda: verifier.verify(headers, body)) == (request_id, stamp)
                with pytest.raises(WebhookRejected, match="forged"):
                    _drive(loop, lambda: verifier.verify(headers, body + b"!"))

            await asyncio.to_thread(random_input)
            await asyncio.to_thread(signed)
        finally:
            await verifier.close()


# -- the webhook endpoint ------------------------------------------------------------------------


async def test_the_webhook_endpoint_never_answers_500(db_url: str, nats_url: str) -> None:
    loop = asyncio.get_running_loop()
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await provision(js)
    pool = await create_pool(db_url, "aisha_status", max_size=4)
    metrics = StatusMetrics()
    async with JwksServer() as jwks, aiohttp.ClientSession() as session:
        verifier = JwksVerifier(jwks.url, tolerance_seconds=300, min_refresh_seconds=0.0)
        tracker = Tracker(pool, metrics)
        receiver = WebhookReceiver(pool, verifier, tracker, metrics, max_bytes=2048)
        app = web.Application(client_max_size=4096)
        app.add_routes(receiver.routes())
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/fal/webhook"

        async def post(body: bytes, headers: dict[str, str]) -> int:
            async with session.post(url, data=body, headers=headers) as response:
                return response.status

        try:

            @HTTP
            @given(headers=_random_headers(), body=st.binary(max_size=3000))
            def random_requests(headers: dict[str, str], body: bytes) -> None:
                assert _drive(loop, lambda: post(body, headers)) in (400, 401, 413)

            @HTTP
            @given(request_id=REQUEST_ID, document=st.dictionaries(JSON_TEXT, JSON, max_size=5))
            def signed_objects(request_id: str, document: dict[str, Any]) -> None:
                body = json.dumps(document).encode()
                headers = jwks.headers(body, request_id)
                expected = 413 if len(body) > 2048 else 200
                assert _drive(loop, lambda: post(body, headers)) == expected

            @HTTP
            @given(request_id=REQUEST_ID, text=st.text(max_size=50))
            def signed_anything(request_id: str, text: str) -> None:
                body = json.dumps({"logs": text, "n": float("nan")}).encode()
                headers = jwks.headers(body, request_id)
                assert _drive(loop, lambda: post(body, headers)) == 400

            await asyncio.to_thread(random_requests)
            await asyncio.to_thread(signed_objects)
            await asyncio.to_thread(signed_anything)
        finally:
            await runner.cleanup()
            await verifier.close()
            await pool.close()
            await nc.drain()
