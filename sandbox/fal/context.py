"""What the HTTP handlers share: the emulator's parts and the auth/error helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox.fal.faults import FaultBook
from sandbox.fal.jobs import Clock, JobRunner
from sandbox.fal.outcomes import Outcomes
from sandbox.fal.recorder import Recorder
from sandbox.fal.storage import Storage
from sandbox.fal.webhooks import WebhookSender

Handler = Callable[[web.Request, bytes], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class Context:
    """Everything the HTTP handlers touch."""

    storage: Storage
    runner: JobRunner
    faults: FaultBook
    recorder: Recorder
    webhooks: WebhookSender
    clock: Clock
    fal_key: str
    strict_key: bool = False
    validate_at_submit: bool = False
    outcomes: Outcomes = field(default_factory=Outcomes)


def error(status: int, detail: Any, **headers: str) -> web.Response:
    """FAL's error body: `{"detail": ...}`."""
    return web.json_response({"detail": detail}, status=status, headers=headers or None)


def key_error(ctx: Context, request: web.Request) -> web.Response | None:
    """401 unless the request carries `Authorization: Key <id:secret>`."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Key" or not key.strip():
        return error(401, "No authentication provided (Authorization: Key <FAL_KEY>)")
    if ctx.strict_key and key != ctx.fal_key:
        return error(401, "Invalid key")
    return None
