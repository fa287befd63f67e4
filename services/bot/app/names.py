"""Avatar names as users type them: trimmed, invisible/control characters removed, 1–40 chars.

Names are stored as plain text; every message escapes them (see `texts.Texts.get`), and
button labels are not parsed by Telegram, so markup in a name is shown, never run.
"""

from __future__ import annotations

import re
import unicodedata

MAX_NAME = 40
# Cc/Cf cover ASCII controls, zero-width chars and bidi overrides (used to spoof text).
_INVISIBLE = frozenset({"Cc", "Cf", "Co", "Cs", "Zl", "Zp"})
_SPACES = re.compile(r"\s+")


def sanitize_name(raw: str) -> str | None:
    """The cleaned name, or None if nothing usable (or too long) remains."""
    normalized = unicodedata.normalize("NFC", raw)
    kept = "".join(
        " " if ch in "\t\n\r" else ch
        for ch in normalized
        if ch in "\t\n\r" or unicodedata.category(ch) not in _INVISIBLE
    )
    name = _SPACES.sub(" ", kept).strip()
    if not 1 <= len(name) <= MAX_NAME:
        return None
    return name


def printable(raw: str | None, limit: int) -> str | None:
    """Telegram profile fields as we store them: invisible/control characters (NUL, which
    PostgreSQL text cannot hold, bidi overrides...) dropped and the length bounded."""
    if raw is None:
        return None
    kept = "".join(ch for ch in raw if unicodedata.category(ch) not in _INVISIBLE)
    return kept.strip()[:limit] or None
