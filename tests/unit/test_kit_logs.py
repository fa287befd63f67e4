"""Structured logs: JSON lines with the service and context ids; secrets never printed."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from services.kit.logs import log_context, setup_logging

SECRET = "s3cr3t-token-value"
KEY_SECRET = "fal-key-secret"


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {n: logging.getLogger(n).level for n in ("aiohttp.access", "httpx", "httpcore", "nats")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, noisy_level in noisy.items():
        logging.getLogger(name).setLevel(noisy_level)


def json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_json_formatter_fields(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("trainer", "json", "INFO")
    logging.getLogger("aisha.test").info("hello %s", "world", extra={"attempt": 2})
    logging.getLogger("aisha.test").debug("not shown at INFO")
    [entry] = json_lines(capsys.readouterr().err)
    assert entry["service"] == "trainer"
    assert entry["level"] == "info"
    assert entry["msg"] == "hello world"
    assert entry["logger"] == "aisha.test"
    assert entry["attempt"] == 2
    assert entry["ts"].endswith("+00:00")


def test_json_formatter_includes_log_context_ids(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("status", "json", "DEBUG")
    log = logging.getLogger("aisha.test")
    with log_context(avatar_id="av-1", request_id="req-9", ignored=None):
        log.warning("outer")
        with log_context(event_id="ev-7"):
            log.error("inner")
    log.info("outside")
    outer, inner, outside = json_lines(capsys.readouterr().err)
    assert outer["avatar_id"] == "av-1"
    assert outer["request_id"] == "req-9"
    assert "ignored" not in outer
    assert "event_id" not in outer
    assert outer["level"] == "warning"
    assert inner["event_id"] == "ev-7"
    assert inner["avatar_id"] == "av-1"
    assert "avatar_id" not in outside
    assert "event_id" not in outside


async def test_log_context_is_per_task(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("bot", "json", "INFO")
    log = logging.getLogger("aisha.test")

    async def work(avatar_id: str, gate: asyncio.Event) -> None:
        with log_context(avatar_id=avatar_id):
            await gate.wait()
            log.info("done %s", avatar_id)

    gate = asyncio.Event()
    tasks = [asyncio.create_task(work(f"av-{i}", gate)) for i in range(3)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    entries = json_lines(capsys.readouterr().err)
    assert sorted((e["msg"], e["avatar_id"]) for e in entries) == [
        (f"done av-{i}", f"av-{i}") for i in range(3)
    ]


def test_exception_is_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("bot", "json", "INFO")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("aisha.test").exception("failed")
    [entry] = json_lines(capsys.readouterr().err)
    assert entry["level"] == "error"
    assert "RuntimeError: boom" in entry["exc"]


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_redactor_hides_secrets_in_message_args_and_exception(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("trainer", fmt, "INFO", secrets=[SECRET, KEY_SECRET, "", "ab"])
    log = logging.getLogger("aisha.test")
    log.info(f"token in message {SECRET}")
    log.info("token in args %s and %r", SECRET, {"key": f"id:{KEY_SECRET}"})
    try:
        raise ValueError(f"bad credentials {SECRET}")
    except ValueError:
        log.exception("call failed with key %s", KEY_SECRET)
    err = capsys.readouterr().err
    assert SECRET not in err
    assert KEY_SECRET not in err
    assert err.count("***") >= 5
    assert "ValueError: bad credentials ***" in err
    if fmt == "json":
        first, second, third = json_lines(err)
        assert first["msg"] == "token in message ***"
        assert second["msg"] == "token in args *** and {'key': 'id:***'}"
        assert third["msg"] == "call failed with key ***"
        assert third["exc"].endswith("ValueError: bad credentials ***")
    else:
        assert "trainer aisha.test: token in message ***" in err


def test_short_secrets_are_not_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    """A 1-3 character "secret" would shred every line; the redactor ignores it."""
    setup_logging("trainer", "json", "INFO", secrets=["ab"])
    logging.getLogger("aisha.test").info("about abc")
    [entry] = json_lines(capsys.readouterr().err)
    assert entry["msg"] == "about abc"


def test_text_format_carries_context(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("bot", "text", "INFO")
    with log_context(avatar_id="av-3"):
        logging.getLogger("aisha.test").info("plain")
    line = capsys.readouterr().err.strip()
    assert " INFO  bot aisha.test: plain" in line
    assert line.endswith("avatar_id=av-3")


def test_setup_logging_replaces_handler_and_quiets_noisy_loggers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging("bot", "json", "DEBUG")
    setup_logging("bot", "json", "DEBUG")
    assert len(logging.getLogger().handlers) == 1
    assert logging.getLogger("nats").level == logging.WARNING
    logging.getLogger("nats").info("chatter")
    logging.getLogger("aisha.test").debug("kept")
    assert [e["msg"] for e in json_lines(capsys.readouterr().err)] == ["kept"]
