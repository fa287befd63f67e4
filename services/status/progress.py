"""A percentage from FAL trainer logs, only when a line plainly carries one.

No public source shows what FAL's hosted trainers print (`docs/reliability.md`,
"Training progress"), so the logs are opaque text and this is a bonus, never depended
upon: a progress bar (`40%|████  | 400/1000`, tqdm's format), a step counter
(`step 400/1000`, `400/1000 steps`) or a labelled percentage (`progress: 40%`,
`40% done`). Other numbers and percentages (`loss=0.09`, `GPU memory 78%`, `sample 2/4`)
are not progress and are ignored; without a match the caller estimates from time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# Bounded digit runs: int() refuses > 4300 digits, and no trainer counts steps in billions.
_STEP = re.compile(
    r"\bsteps?\D{0,3}(\d{1,9})\s*(?:/|of)\s*(\d{1,9})|\b(\d{1,9})\s*/\s*(\d{1,9})\s+steps\b",
    re.IGNORECASE,
)
_BAR = re.compile(r"(\d{1,3})%\s*\|")
_LABELLED = re.compile(
    r"\bprogress\W{0,3}(\d{1,3}(?:\.\d+)?)\s*%|(\d{1,3}(?:\.\d+)?)\s*%\s*(?:done|complete)",
    re.IGNORECASE,
)


def percent_from_logs(logs: Iterable[Mapping[str, Any]]) -> int | None:
    """The highest progress percentage (0-99) a log line plainly shows, None if none does;
    completion alone means 100."""
    best: float | None = None
    for entry in logs:
        if not isinstance(entry, Mapping):  # FAL's JSON, not ours: skip what is not a record
            continue
        found = _percent(str(entry.get("message", "")))
        if found is not None and 0 <= found <= 100:
            best = found if best is None else max(best, found)
    return None if best is None else min(int(best), 99)


def _percent(message: str) -> float | None:
    if step := _STEP.search(message):
        done, total = (int(g) for g in (step.group(1, 2) if step.group(1) else step.group(3, 4)))
        return 100 * done / total if total > 0 and done <= total else None
    if bar := _BAR.search(message):
        return float(bar.group(1))
    if labelled := _LABELLED.search(message):
        return float(labelled.group(1) or labelled.group(2))
    return None


def format_logs(logs: Iterable[Mapping[str, Any]], limit_chars: int = 20_000) -> str:
    """The tail of the logs as text, bounded so a chatty trainer cannot bloat a row."""
    text = "\n".join(
        f"{e.get('timestamp', '')} {e.get('level', '')} {e.get('message', '')}".strip()
        for e in logs
        if isinstance(e, Mapping)
    )
    return text[-limit_chars:]
