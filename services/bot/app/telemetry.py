"""Counts what the bot asks of Telegram and what Telegram asks of the bot.

`TelegramRequestTelemetry` is an aiogram *session* middleware: it sees every Bot API call,
the sender's and the handlers' alike. It is registered after `RetryAfterMiddleware`, which
makes it the inner one (aiogram wraps the first registered outermost), so each HTTP attempt
is counted: a 429 that `RetryAfterMiddleware` waits out and retries still shows up as
`outcome="retry_after"` — that is the signal the flood-control alert needs.

`UpdateTelemetry` is a dispatcher outer middleware: updates by type and outcome, and how
long each took. It also binds the Telegram user id to the log context of the update.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import TelegramObject, Update
from aiogram.types.update import UpdateTypeLookupError

from services.bot.app.metrics import BotMetrics
from services.kit.logs import log_context

_OUTCOMES: tuple[tuple[type[TelegramAPIError], str], ...] = (
    (TelegramRetryAfter, "retry_after"),
    (TelegramMigrateToChat, "migrate_to_chat"),
    (TelegramForbiddenError, "forbidden"),
    (TelegramNotFound, "not_found"),
    (TelegramConflictError, "conflict"),
    (TelegramUnauthorizedError, "unauthorized"),
    (TelegramEntityTooLarge, "entity_too_large"),
    (TelegramServerError, "server_error"),
    (TelegramNetworkError, "network_error"),
)


def outcome_of(exc: BaseException) -> str:
    """A closed set of outcome codes; "message is not modified" is its own (benign) code."""
    if isinstance(exc, TelegramBadRequest):
        return "not_modified" if "message is not modified" in exc.message else "bad_request"
    for kind, code in _OUTCOMES:
        if isinstance(exc, kind):
            return code
    return "error"


class TelegramRequestTelemetry(BaseRequestMiddleware):
    def __init__(self, metrics: BotMetrics):
        self.metrics = metrics

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Any:
        name = method.__api_method__
        started = time.perf_counter()
        try:
            result = await make_request(bot, method)
        except Exception as exc:
            self.metrics.telegram_requests.labels(name, outcome_of(exc)).inc()
            raise
        finally:
            self.metrics.telegram_seconds.labels(name).observe(time.perf_counter() - started)
        self.metrics.telegram_requests.labels(name, "ok").inc()
        return result


Next = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UpdateTelemetry(BaseMiddleware):
    """Outer middleware on `dp.update`: inside aiogram's error middleware, so a handler's
    exception passes through here (counted) before the error handler answers the user."""

    def __init__(self, metrics: BotMetrics):
        self.metrics = metrics

    async def __call__(self, handler: Next, event: TelegramObject, data: dict[str, Any]) -> Any:
        kind = _update_type(event)
        user = data.get("event_from_user")
        started = time.perf_counter()
        outcome = "error"
        try:
            ids = {"update_id": getattr(event, "update_id", None)}
            with log_context(tg_user_id=user.id if user is not None else None, **ids):
                result = await handler(event, data)
            outcome = "unhandled" if result is UNHANDLED else "ok"
            return result
        finally:
            self.metrics.updates.labels(kind, outcome).inc()
            self.metrics.update_seconds.labels(kind).observe(time.perf_counter() - started)


def _update_type(event: TelegramObject) -> str:
    if not isinstance(event, Update):
        return type(event).__name__.lower()
    try:
        return event.event_type
    except UpdateTypeLookupError:  # a type newer than this aiogram: still one closed label
        return "unknown"
