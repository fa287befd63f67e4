"""Reads a percentage out of FAL trainer logs. Best effort: never depended upon."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# Bounded digit runs: int() refuses > 4300 digits, and no trainer counts steps in billions.
_STEP = re.compile(r"step\D{0,3}(\d{1,9})\s*(?:/|of)\s*(\d{1,9})", re.IGNORECASE)
_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s*%")


def progress_from_logs(logs: Iterable[Mapping[str, Any]], previous: int = 0) -> int:
    """The highest percent (0-99) the logs show; completion alone means 100."""
    best = previous
    for entry in logs:
        if not isinstance(entry, Mapping):  # FAL's JSON, not ours: skip what is not a record
            continue
        message = str(entry.get("message", ""))
        found: float | None = None
        if step := _STEP.search(message):
            done, total = int(step.group(1)), int(step.group(2))
            if total > 0 and done <= total:
                found = 100 * done / total
        elif pct := _PERCENT.search(message):
            found = float(pct.group(1))
        if found is not None and 0 <= found <= 100:
            best = max(best, int(found))
    return min(best, 99)


def format_logs(logs: Iterable[Mapping[str, Any]], limit_chars: int = 20_000) -> str:
    """The tail of the logs as text, bounded so a chatty trainer cannot bloat a row."""
    text = "\n".join(
        f"{e.get('timestamp', '')} {e.get('level', '')} {e.get('message', '')}".strip()
        for e in logs
        if isinstance(e, Mapping)
    )
    return text[-limit_chars:]
