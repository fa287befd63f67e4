"""Telegram's rules: errors, content limits, inline keyboards, flood control, faults."""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sandbox.telegram.markup import MarkupError, ParsedText, parse_html, utf16_len

__all__ = [
    "ApiError",
    "Fault",
    "Limits",
    "RateLimiter",
    "Violations",
    "check_caption",
    "check_reply_markup",
    "check_text",
    "format_text",
]

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
BUTTON_ACTIONS = (
    "url",
    "callback_data",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)


class ApiError(Exception):
    """A Bot API error reply; `kind` names the violation counted for it (None: not counted)."""

    def __init__(
        self,
        code: int,
        description: str,
        kind: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.kind = kind
        self.retry_after = retry_after

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(text: str, kind: str | None = None) -> ApiError:
    return ApiError(400, f"Bad Request: {text}", kind)


class Violations(Counter[str]):
    """Count of rule violations by kind."""


def format_text(text: str, parse_mode: str | None) -> ParsedText:
    """Apply a parse mode; only HTML is understood, other modes pass the text through."""
    if parse_mode and parse_mode.upper() == "HTML":
        try:
            return parse_html(text)
        except MarkupError as exc:
            raise bad_request(f"can't parse entities: {exc}", "html_invalid") from exc
    return ParsedText(text)


def check_text(parsed: ParsedText) -> None:
    size = utf16_len(parsed.text.strip())
    if size == 0:
        raise bad_request("message text is empty", "text_empty")
    if utf16_len(parsed.text) > MAX_TEXT:
        raise bad_request("message is too long", "text_too_long")


def check_caption(parsed: ParsedText) -> None:
    if utf16_len(parsed.text) > MAX_CAPTION:
        raise bad_request("message caption is too long", "caption_too_long")


def check_reply_markup(markup: Any) -> None:
    """Validate an inline keyboard; other keyboards are accepted as they are."""
    if markup is None:
        return
    if not isinstance(markup, dict):
        raise bad_request("can't parse reply keyboard markup JSON object", "markup_invalid")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise bad_request('field "inline_keyboard" must be an Array of Array', "markup_invalid")
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise bad_request("can't parse inline keyboard button", "button_invalid")
            actions = [name for name in BUTTON_ACTIONS if name in button]
            if len(actions) != 1:
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed "
                    "in the inline keyboard"
                    if not actions
                    else "can't parse inline keyboard button: exactly one action is allowed",
                    "button_invalid",
                )
            data = button.get("callback_data")
            if "callback_data" in button and not (
                isinstance(data, str) and 1 <= len(data.encode()) <= MAX_CALLBACK_DATA
            ):
                raise bad_request("BUTTON_DATA_INVALID", "callback_data_invalid")


@dataclass(slots=True)
class Limits:
    """Flood control (messages per second; burst = bucket size) and answer deadlines (s).

    The defaults are the strict per-chat limits a bot must live with (Telegram documents
    "about one message a second" in a private chat with short bursts; these exact numbers
    are the emulator's assumption): burst 3, then 1 a second, edits counted."""

    enabled: bool = True
    global_rate: float = 30.0
    global_burst: float = 30.0
    chat_rate: float = 1.0
    chat_burst: float = 3.0
    callback_timeout: float = 15.0
    limit_edits: bool = True
    pre_checkout_timeout: float = 10.0
    #: Whether an edit that changes nothing answers 400 "message is not modified" (what
    #: Telegram is widely seen to do; the Bot API page does not list it): off, it succeeds.
    not_modified: bool = True


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


@dataclass(slots=True)
class RateLimiter:
    """Token buckets: one for the bot, one per chat."""

    limits: Limits
    _global: _Bucket | None = None
    _chats: dict[int, _Bucket] = field(default_factory=dict)

    def _take(self, bucket: _Bucket, rate: float, burst: float, now: float) -> float:
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.stamp) * rate)
        bucket.stamp = now
        if bucket.tokens >= 1:
            return 0.0
        return (1 - bucket.tokens) / rate

    def reset(self) -> None:
        self._global = None
        self._chats.clear()

    def acquire(self, chat_id: int) -> None:
        """Spend one message for `chat_id` or raise a 429 ApiError."""
        lim = self.limits
        if not lim.enabled:
            return
        now = time.monotonic()
        if self._global is None:
            self._global = _Bucket(lim.global_burst, now)
        chat = self._chats.setdefault(chat_id, _Bucket(lim.chat_burst, now))
        wait_chat = self._take(chat, lim.chat_rate, lim.chat_burst, now)
        wait_global = self._take(self._global, lim.global_rate, lim.global_burst, now)
        wait = max(wait_chat, wait_global)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            kind = "rate_limit_chat" if wait_chat >= wait_global else "rate_limit_global"
            raise ApiError(429, f"Too Many Requests: retry after {retry}", kind, retry)
        chat.tokens -= 1
        self._global.tokens -= 1


@dataclass(slots=True)
class Fault:
    """Answer the next `count` calls of `method` with an error (injected, not counted)."""

    method: str
    status: int = 500
    count: int = 1
    retry_after: int | None = None
    description: str | None = None

    def error(self) -> ApiError:
        if self.status == 429:
            retry = self.retry_after or 1
            return ApiError(429, f"Too Many Requests: retry after {retry}", None, retry)
        text = self.description or {
            400: "Bad Request: injected fault",
            403: "Forbidden: bot was blocked by the user",
            500: "Internal Server Error",
            502: "Bad Gateway",
        }.get(self.status, "Injected fault")
        return ApiError(self.status, text, None, self.retry_after)
