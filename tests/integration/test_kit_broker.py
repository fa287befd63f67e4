"""Provisioning key-value buckets: created with direct gets, and old ones switched to them."""

from __future__ import annotations

import uuid

from nats.aio.client import Client as NATS
from nats.js import api

from contracts.jetstream import BucketSpec
from services.kit.broker import ensure_kv
from tests.integration import kit_harness

# the shared fixture, used here by name
nc = kit_harness.nc


async def test_new_bucket_answers_gets_directly(nc: NATS) -> None:
    js = nc.jetstream()
    spec = BucketSpec(name=f"t_{uuid.uuid4().hex[:8]}")
    await ensure_kv(js, spec)
    info = await js.stream_info(f"KV_{spec.name}")
    assert info.config.allow_direct is True
    kv = await js.key_value(spec.name)
    await kv.put("fsm.1.state", b'"A:b"')
    assert (await kv.get("fsm.1.state")).value == b'"A:b"'


async def test_bucket_made_without_direct_gets_is_switched_and_keeps_its_keys(
    nc: NATS,
) -> None:
    js = nc.jetstream()
    spec = BucketSpec(name=f"t_{uuid.uuid4().hex[:8]}")
    old = await js.create_key_value(api.KeyValueConfig(bucket=spec.name, history=1))
    await old.put("fsm.2.data", b'{"name": "Anna"}')
    assert (await js.stream_info(f"KV_{spec.name}")).config.allow_direct is not True

    await ensure_kv(js, spec)
    await ensure_kv(js, spec)  # idempotent

    assert (await js.stream_info(f"KV_{spec.name}")).config.allow_direct is True
    kv = await js.key_value(spec.name)
    assert (await kv.get("fsm.2.data")).value == b'{"name": "Anna"}'
