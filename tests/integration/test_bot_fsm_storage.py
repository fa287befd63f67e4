"""The FSM storage on a real NATS KV bucket, with and without its write-through cache."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiogram.fsm.storage.base import StorageKey
from nats.aio.client import Client as NATS
from nats.js.kv import KeyValue

from contracts.jetstream import BucketSpec
from services.bot.app.fsm_storage import NatsKVStorage, kv_key
from services.kit.broker import ensure_kv
from tests.integration import kit_harness

# the shared fixture, used here by name
nc = kit_harness.nc


@pytest.fixture
async def kv(nc: NATS) -> KeyValue:
    js = nc.jetstream()
    spec = BucketSpec(name=f"fsm_{uuid.uuid4().hex[:8]}")
    await ensure_kv(js, spec)
    return await js.key_value(spec.name)


def _key(user: int = 7) -> StorageKey:
    return StorageKey(bot_id=1, chat_id=user, user_id=user)


class Gated:
    """The bucket, with `get` answers held until released and `put` failing when told to."""

    def __init__(self, kv: KeyValue):
        self.kv = kv
        self.hold = asyncio.Event()
        self.hold.set()
        self.fail_puts = False
        self.gets = 0

    async def get(self, name: str) -> Any:
        self.gets += 1
        entry = await self.kv.get(name)
        await self.hold.wait()  # the answer is on its way back: held
        return entry

    async def put(self, name: str, value: bytes) -> int:
        if self.fail_puts:
            raise TimeoutError("NATS did not answer")
        return await self.kv.put(name, value)

    async def delete(self, name: str) -> bool:
        return await self.kv.delete(name)


@pytest.mark.parametrize("cache_size", [0, 100])
async def test_state_and_data_round_trip(kv: KeyValue, cache_size: int) -> None:
    storage, key = NatsKVStorage(kv, cache_size), _key()
    assert await storage.get_state(key) is None
    assert await storage.get_data(key) == {}
    await storage.set_state(key, "CreateAvatar:name")
    await storage.update_data(key, {"name": "Anna", "photos": [1, 2]})
    fresh = NatsKVStorage(kv)  # what NATS holds
    for reader in (storage, fresh):
        assert await reader.get_state(key) == "CreateAvatar:name"
        assert await reader.get_data(key) == {"name": "Anna", "photos": [1, 2]}
    await storage.set_state(key, None)
    await storage.set_data(key, {})
    assert await fresh.get_state(key) is None
    assert await fresh.get_data(key) == {}


async def test_reads_come_from_memory_and_a_mutated_read_changes_nothing(kv: KeyValue) -> None:
    gated = Gated(kv)
    storage, key = NatsKVStorage(gated, 100), _key()  # type: ignore[arg-type]
    await storage.set_data(key, {"photos": [1]})
    data = await storage.get_data(key)
    data["photos"].append(2)
    assert await storage.get_data(key) == {"photos": [1]}
    assert await storage.get_state(key) is None
    assert await storage.get_state(key) is None
    assert gated.gets == 1  # the state, once; the data was written here


async def test_clearing_an_absent_key_writes_nothing(kv: KeyValue) -> None:
    storage, key = NatsKVStorage(kv, 100), _key()

    async def stored() -> int:
        return (await kv.status()).values

    assert await storage.get_state(key) is None
    assert await storage.get_data(key) == {}
    await storage.set_state(key, None)  # /start's clear() on a known-empty conversation
    await storage.set_data(key, {})
    assert await stored() == 0
    await storage.set_state(key, "A:b")
    await storage.set_state(key, None)
    assert await stored() == 1  # a real clear is written (the delete marker)
    assert await NatsKVStorage(kv).get_state(key) is None


async def test_a_failed_write_is_forgotten_and_read_again(kv: KeyValue) -> None:
    gated = Gated(kv)
    storage, key = NatsKVStorage(gated, 100), _key()  # type: ignore[arg-type]
    await storage.set_state(key, "A:one")
    gated.fail_puts = True
    with pytest.raises(TimeoutError):
        await storage.set_state(key, "A:two")
    gated.fail_puts = False
    reads = gated.gets
    assert await storage.get_state(key) == "A:one"
    assert gated.gets == reads + 1


async def test_a_read_overtaken_by_a_write_is_not_cached(kv: KeyValue) -> None:
    gated = Gated(kv)
    storage, key = NatsKVStorage(gated, 100), _key()  # type: ignore[arg-type]
    await kv.put(f"{kv_key(key)}.state", b'"A:old"')
    gated.hold.clear()
    reading = asyncio.create_task(storage.get_state(key))
    await asyncio.sleep(0.05)
    await storage.set_state(key, "A:new")
    gated.hold.set()
    await reading
    assert await storage.get_state(key) == "A:new"


async def test_the_cache_is_bounded(kv: KeyValue) -> None:
    storage = NatsKVStorage(kv, 3)
    for user in range(10):
        await storage.set_state(_key(user), "A:b")
    assert len(storage._cache) == 3
    assert await NatsKVStorage(kv).get_state(_key(0)) == "A:b"
    assert await storage.get_state(_key(0)) == "A:b"  # evicted, read from NATS


async def test_writes_of_other_conversations_do_not_stop_caching(kv: KeyValue) -> None:
    gated = Gated(kv)
    storage = NatsKVStorage(gated, 100)  # type: ignore[arg-type]
    gated.hold.clear()
    reading = asyncio.create_task(storage.get_state(_key(1)))
    await asyncio.sleep(0.05)
    gated.hold.set()
    await storage.set_state(_key(2), "A:b")  # someone else's, while the read is out
    assert await reading is None
    reads = gated.gets
    assert await storage.get_state(_key(1)) is None
    assert gated.gets == reads  # answered from memory
