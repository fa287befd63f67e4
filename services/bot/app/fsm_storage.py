"""aiogram FSM storage on NATS KV, so a conversation survives restarts.

State and data live under two keys per conversation (`<key>.state`, `<key>.data`) in the
`KV_FSM` bucket, as JSON. A missing key is the empty state; clearing deletes the key.

The bot runs as one replica (docs/operations.md), so this process writes every key it reads:
a bounded write-through cache (`cache_size` conversations' keys, least recently used out)
answers reads without a round trip to NATS — aiogram reads the state on every update and the
data on every `update_data` — and skips deleting a key it knows is absent (`/start` clears
both). A failed write forgets the key, so the next read asks NATS again. Set the size to 0
(`BOT_FSM_CACHE_SIZE`) to run replicas that share conversations.
"""

from __future__ import annotations

import contextlib
import json
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey
from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from contracts.jetstream import KV_FSM


def kv_key(key: StorageKey) -> str:
    """`fsm.<bot>.<chat>.<user>[.t<thread>][.b<business>].<destiny>` (KV-safe characters)."""
    parts = [f"fsm.{key.bot_id}.{key.chat_id}.{key.user_id}"]
    if key.thread_id is not None:
        parts.append(f"t{key.thread_id}")
    if key.business_connection_id is not None:
        parts.append("b" + "".join(c if c.isalnum() else "_" for c in key.business_connection_id))
    parts.append("".join(c if c.isalnum() else "_" for c in key.destiny) or "default")
    return ".".join(parts)


class NatsKVStorage(BaseStorage):
    """BaseStorage over one KV bucket; the NATS connection belongs to the runtime."""

    def __init__(self, kv: KeyValue, cache_size: int = 0):
        self.kv = kv
        self.cache_size = cache_size
        self._cache: OrderedDict[str, bytes | None] = OrderedDict()
        # A read or write overlapped by a (later) write *of the same key* is not cached: each
        # write stamps its key; stamps are dropped whenever nothing is waiting on NATS.
        self._writes = 0
        self._stamps: dict[str, int] = {}
        self._waiting = 0

    @classmethod
    async def open(
        cls, js: JetStreamContext, bucket: str = KV_FSM.name, cache_size: int = 0
    ) -> NatsKVStorage:
        return cls(await js.key_value(bucket), cache_size)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        await self._write(f"{kv_key(key)}.state", value)

    async def get_state(self, key: StorageKey) -> str | None:
        value = await self._get(f"{kv_key(key)}.state")
        return value if isinstance(value, str) else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._write(f"{kv_key(key)}.data", dict(data) if data else None)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        value = await self._get(f"{kv_key(key)}.data")
        return dict(value) if isinstance(value, dict) else {}

    async def close(self) -> None:
        """Nothing to do: the connection is drained by the runtime."""

    async def _get(self, name: str) -> Any:
        if name in self._cache:
            self._cache.move_to_end(name)
            raw = self._cache[name]
        else:
            self._waiting += 1
            try:
                raw = (await self.kv.get(name)).value or None
            except (KeyNotFoundError, KeyDeletedError, NotFoundError):
                raw = None
            finally:
                self._waiting -= 1
            if name not in self._stamps:  # no write of this key overlapped the read
                self._remember(name, raw)
            self._settled()
        return json.loads(raw) if raw else None

    async def _write(self, name: str, value: Any) -> None:
        """Put `value` (None: delete the key). The cache keeps the encoded bytes (a handler
        mutating what it read cannot change it) and follows only a write that worked."""
        if value is None and name in self._cache and self._cache[name] is None:
            self._cache.move_to_end(name)
            return  # known absent: nothing to delete
        self._cache.pop(name, None)
        self._writes += 1
        stamp = self._stamps[name] = self._writes
        raw = None if value is None else json.dumps(value).encode()
        self._waiting += 1
        try:
            if raw is None:
                with contextlib.suppress(KeyNotFoundError, KeyDeletedError, NotFoundError):
                    await self.kv.delete(name)
            else:
                await self.kv.put(name, raw)
        finally:
            self._waiting -= 1
        if self._stamps[name] == stamp:  # no later write of this key began
            self._remember(name, raw)
        self._settled()

    def _settled(self) -> None:
        if not self._waiting:
            self._stamps.clear()

    def _remember(self, name: str, raw: bytes | None) -> None:
        if not self.cache_size:
            return
        self._cache[name] = raw
        self._cache.move_to_end(name)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
