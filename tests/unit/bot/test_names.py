"""Avatar names: trimmed, invisible characters removed, 1–40 characters."""

from __future__ import annotations

import pytest

from services.bot.app.names import MAX_NAME, sanitize_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Anna  ", "Anna"),
        ("An\x00na\x07", "Anna"),
        ("Line\nbreak\ttab", "Line break tab"),
        ("zero\u200bwidth\u202eRTL", "zerowidthRTL"),
        ("<b>bold</b>", "<b>bold</b>"),  # kept as text; escaped when shown
        ("Мария", "Мария"),
    ],
)
def test_cleans_names(raw: str, expected: str) -> None:
    assert sanitize_name(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "\x00\x01", "x" * (MAX_NAME + 1)])
def test_rejects_empty_or_long(raw: str) -> None:
    assert sanitize_name(raw) is None


def test_accepts_exactly_max_length() -> None:
    assert sanitize_name("y" * MAX_NAME) == "y" * MAX_NAME
