"""Structured logs: JSON in production, readable text in dev, secrets always redacted.

Ids that let one avatar's story be followed across services (avatar_id, request_id,
event_id, ...) ride in a context variable and land on every record logged inside it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "log_context", default=None
)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


@contextlib.contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Attach ids to every record logged inside the block (asyncio-task safe)."""
    token = _context.set(
        {**(_context.get() or {}), **{k: v for k, v in ids.items() if v is not None}}
    )
    try:
        yield
    finally:
        _context.reset(token)


class _Redactor(logging.Filter):
    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self._secrets = tuple(s for s in secrets if s and len(s) >= 4)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        if self._secrets:
            record.msg = self.redact(record.getMessage())
            record.args = None
            self._redact_extras(record)
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
                record.exc_info = None
        return True

    def _redact_extras(self, record: logging.LogRecord) -> None:
        """`extra=` values and context ids are printed by both formatters, so a secret in
        one (an URL with a token, a config dump) must be caught there too."""
        for key, value in _extras(record).items():
            if value is None or isinstance(value, bool | int | float):
                continue
            text = value if isinstance(value, str) else str(value)
            clean = self.redact(text)
            if clean != text:
                setattr(record, key, clean)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__("%(asctime)s %(levelname)-5s " + service + " %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line


def setup_logging(service: str, fmt: str, level: str, secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once per process; repeated calls replace the handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if fmt == "json" else TextFormatter(service))
    handler.addFilter(_Redactor(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiohttp.access", "httpx", "httpcore", "nats"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
