"""aiogram FSM storage on NATS KV, so a conversation survives restarts and spans replicas.

State and data live under two keys per conversation (`<key>.state`, `<key>.data`) in the
`KV_FSM` bucket, as JSON. A missing key is the empty state; clearing deletes the key.
"""

from __future__ import annotations

import json
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

    def __init__(self, kv: KeyValue):
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, bucket: str = KV_FSM.name) -> NatsKVStorage:
        return cls(await js.key_value(bucket))

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        if value is None:
            await self._delete(f"{kv_key(key)}.state")
        else:
            await self.kv.put(f"{kv_key(key)}.state", json.dumps(value).encode())

    async def get_state(self, key: StorageKey) -> str | None:
        value = await self._get(f"{kv_key(key)}.state")
        return value if isinstance(value, str) else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not data:
            await self._delete(f"{kv_key(key)}.data")
        else:
            await self.kv.put(f"{kv_key(key)}.data", json.dumps(dict(data)).encode())

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        value = await self._get(f"{kv_key(key)}.data")
        return dict(value) if isinstance(value, dict) else {}

    async def close(self) -> None:
        """Nothing to do: the connection is drained by the runtime."""

    async def _get(self, name: str) -> Any:
        try:
            entry = await self.kv.get(name)
        except (KeyNotFoundError, KeyDeletedError, NotFoundError):
            return None
        return json.loads(entry.value) if entry.value else None

    async def _delete(self, name: str) -> None:
        try:
            await self.kv.delete(name)
        except (KeyNotFoundError, KeyDeletedError, NotFoundError):
            return
