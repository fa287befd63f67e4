"""Every request the emulator saw, with secrets masked, for tests to assert on."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


def mask_auth(value: str) -> str:
    """`Key id:secret` → `Key id:***`; `Bearer tok` → `Bearer ***`."""
    scheme, _, credential = value.partition(" ")
    key_id, sep, _ = credential.partition(":")
    return f"{scheme} {key_id}:***" if sep else f"{scheme} ***"


@dataclass(slots=True)
class RecordedRequest:
    """One HTTP request as received."""

    at: float
    host: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    body_size: int
    op: str | None = None
    app_id: str | None = None
    status: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Recorder:
    """A bounded log of requests."""

    def __init__(self, limit: int = 10_000) -> None:
        self._items: deque[RecordedRequest] = deque(maxlen=limit)

    def add(
        self,
        host: str,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> RecordedRequest:
        clean = {
            k: (mask_auth(v) if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()
        }
        parsed: Any = None
        if body and "json" in content_type:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        item = RecordedRequest(time.time(), host, method, path, query, clean, parsed, len(body))
        self._items.append(item)
        return item

    def find(
        self,
        *,
        host: str | None = None,
        method: str | None = None,
        op: str | None = None,
        path_prefix: str | None = None,
    ) -> list[RecordedRequest]:
        return [
            r
            for r in self._items
            if (host is None or r.host == host)
            and (method is None or r.method == method)
            and (op is None or r.op == op)
            and (path_prefix is None or r.path.startswith(path_prefix))
        ]

    def clear(self) -> None:
        self._items.clear()
