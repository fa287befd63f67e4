"""Update delivery: getUpdates long polling and webhook pushes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from sandbox.telegram.api import Call, method
from sandbox.telegram.rules import ApiError, bad_request
from sandbox.telegram.state import DEFAULT_UPDATES, Json, World

__all__ = ["Delivery", "Webhook"]

log = logging.getLogger(__name__)
SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")
MAX_POLL_TIMEOUT = 50.0


@dataclass(slots=True)
class Webhook:
    """The registered webhook and its last delivery error."""

    url: str
    secret_token: str | None
    max_connections: int = 40
    last_error_date: int | None = None
    last_error_message: str | None = None


class Delivery:
    """Hands updates to the bot, by long polling or by webhook pushes, in order."""

    def __init__(self, world: World, session: Callable[[], aiohttp.ClientSession]) -> None:
        self.world = world
        self.webhook: Webhook | None = None
        self._session = session
        self._task: asyncio.Task[None] | None = None
        self._generation = 0
        self._closing = False
        #: Awaited before update ids leave the emulator (set when its state is persisted).
        self.before_handout: Callable[[], Awaitable[None]] | None = None

    def set_allowed(self, allowed: Any) -> None:
        if isinstance(allowed, list):
            self.world.allowed_updates = frozenset(allowed) if allowed else DEFAULT_UPDATES

    async def get_updates(self, offset: int | None, limit: int, wait: float) -> list[Json]:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
                "getupdates_conflict",
            )
        if offset is not None:
            self.world.confirm(offset)
        self._generation += 1
        mine = self._generation
        self.world.bump()  # an older poll still waiting is terminated with 409
        deadline = time.monotonic() + min(max(wait, 0.0), MAX_POLL_TIMEOUT)
        while not self.world.updates and not self._closing:
            left = deadline - time.monotonic()
            if left <= 0 or mine != self._generation:
                break
            await self.world.wait_change(left)
        if mine != self._generation:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; "
                "make sure that only one bot instance is running",
                "getupdates_conflict",
            )
        batch = self.world.updates[: max(1, min(limit, 100))]
        if batch and self.before_handout is not None:
            await self.before_handout()
        return batch

    def start_push(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._push_loop(), name="telegram-webhook-push")

    async def close(self) -> None:
        self._closing = True
        self.world.bump()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _push_loop(self) -> None:
        backoff = 0.1
        while self.webhook is not None and not self._closing:
            if not self.world.updates:
                await self.world.wait_change(1.0)
                continue
            hook, update = self.webhook, self.world.updates[0]
            if self.before_handout is not None:
                await self.before_handout()
            headers = {"X-Telegram-Bot-Api-Secret-Token": hook.secret_token or ""}
            if not hook.secret_token:
                headers.clear()
            error: str | None = None
            try:
                timeout = aiohttp.ClientTimeout(total=10)
                async with self._session().post(
                    hook.url, json=update, headers=headers, timeout=timeout
                ) as resp:
                    if not 200 <= resp.status < 300:
                        error = f"Wrong response from the webhook: {resp.status} {resp.reason}"
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                error = f"Connection failed: {type(exc).__name__}"
            if error is None:
                backoff = 0.1
                if self.world.updates and self.world.updates[0] is update:
                    self.world.updates.pop(0)
                    self.world.bump()
                continue
            hook.last_error_date, hook.last_error_message = int(time.time()), error
            log.info("webhook delivery failed: %s", error)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


@method("getUpdates")
async def get_updates(call: Call) -> list[Json]:
    params = call.params
    call.delivery.set_allowed(params.get_json("allowed_updates"))
    limit = params.get_int("limit", 100) or 100
    return await call.delivery.get_updates(
        params.get_int("offset"), limit, params.get_float("timeout", 0.0)
    )


@method("setWebhook")
async def set_webhook(call: Call) -> bool:
    params, delivery = call.params, call.delivery
    url = params.get_str("url") or ""
    if not url:
        delivery.webhook = None
        return True
    if not url.startswith(("http://", "https://")):
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook", "bad_webhook")
    secret = params.get_str("secret_token")
    if secret is not None and not SECRET.fullmatch(secret):
        raise bad_request("bad webhook: secret token contains unallowed characters", "bad_webhook")
    if params.get_bool("drop_pending_updates"):
        call.world.updates.clear()
    delivery.set_allowed(params.get_json("allowed_updates"))
    delivery.webhook = Webhook(url, secret, params.get_int("max_connections", 40) or 40)
    delivery.start_push()
    call.world.bump()
    return True


@method("deleteWebhook")
async def delete_webhook(call: Call) -> bool:
    if call.params.get_bool("drop_pending_updates"):
        call.world.updates.clear()
    call.delivery.webhook = None
    call.world.bump()
    return True


@method("getWebhookInfo")
async def get_webhook_info(call: Call) -> Json:
    hook = call.delivery.webhook
    info: Json = {
        "url": hook.url if hook else "",
        "has_custom_certificate": False,
        "pending_update_count": len(call.world.updates),
        "allowed_updates": sorted(call.world.allowed_updates),
    }
    if hook is not None:
        info["max_connections"] = hook.max_connections
        if hook.last_error_date is not None:
            info["last_error_date"] = hook.last_error_date
            info["last_error_message"] = hook.last_error_message
    return info
