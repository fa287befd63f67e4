"""The curated style templates (`styles.toml`), validated once when the bot starts.

The data file carries its own translations (title and preview per language) because a style
is content, not interface: adding one is a data change that must not touch the locale files.
Validation is strict so a broken entry stops the bot at start (and the unit test) instead of
producing a half-translated button or a prompt without the person in it.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.bot.app.texts import DEFAULT_LANGUAGE, LANGUAGES

STYLES_FILE = Path(__file__).with_name("styles.toml")
#: Style and category ids travel in callback data (64 bytes in all), so they stay short.
ID_PATTERN = re.compile(r"^[a-z0-9_]{1,16}$")
MAX_TITLE = 40
MAX_PREVIEW = 120
MAX_TEMPLATE = 400
SUBJECT = "subject"


class CatalogueError(ValueError):
    """The data file is inconsistent; the message names the entry."""


@dataclass(frozen=True, kw_only=True)
class Style:
    id: str
    category: str
    title: Mapping[str, str]
    preview: Mapping[str, str]
    prompt: str

    def title_in(self, lang: str) -> str:
        return self.title.get(lang) or self.title[DEFAULT_LANGUAGE]

    def preview_in(self, lang: str) -> str:
        return self.preview.get(lang) or self.preview[DEFAULT_LANGUAGE]

    def render(self, subject: str) -> str:
        """The English prompt with the person put in."""
        return self.prompt.format(subject=subject)


class Catalogue:
    """Styles by id and by category, in the order of the data file."""

    def __init__(self, categories: Mapping[str, Mapping[str, str]], styles: list[Style]):
        self._categories = {k: dict(v) for k, v in categories.items()}
        self._styles = {s.id: s for s in styles}

    @classmethod
    def load(cls, path: Path = STYLES_FILE) -> Catalogue:
        with path.open("rb") as f:
            raw = tomllib.load(f)
        categories = {
            str(cid): _localized(f"category {cid}", value, MAX_TITLE)
            for cid, value in dict(raw.get("categories", {})).items()
        }
        for cid in categories:
            if not ID_PATTERN.match(cid):
                raise CatalogueError(f"category id {cid!r} must match {ID_PATTERN.pattern}")
        styles = [_style(entry, categories) for entry in raw.get("style", [])]
        ids = [s.id for s in styles]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise CatalogueError(f"duplicate style ids: {duplicates}")
        return cls(categories, styles)

    @property
    def category_ids(self) -> list[str]:
        """Categories that have at least one style, in file order."""
        used = {s.category for s in self._styles.values()}
        return [c for c in self._categories if c in used]

    def category_title(self, category: str, lang: str) -> str:
        names = self._categories[category]
        return names.get(lang) or names[DEFAULT_LANGUAGE]

    def has_category(self, category: str) -> bool:
        return category in self._categories

    def in_category(self, category: str) -> list[Style]:
        return [s for s in self._styles.values() if s.category == category]

    def get(self, style_id: str | None) -> Style | None:
        return self._styles.get(style_id) if style_id else None

    def __len__(self) -> int:
        return len(self._styles)

    def __iter__(self) -> Iterator[Style]:
        return iter(self._styles.values())


def _localized(where: str, value: Any, limit: int) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise CatalogueError(f"{where}: expected a table with {', '.join(LANGUAGES)}")
    out: dict[str, str] = {}
    for lang in LANGUAGES:
        text = value.get(lang)
        if not isinstance(text, str) or not text.strip():
            raise CatalogueError(f"{where}: missing {lang!r} text")
        if len(text) > limit:
            raise CatalogueError(f"{where}: {lang!r} text is longer than {limit} characters")
        out[lang] = text.strip()
    return out


def _style(entry: Mapping[str, Any], categories: Mapping[str, Any]) -> Style:
    sid = str(entry.get("id", ""))
    if not ID_PATTERN.match(sid):
        raise CatalogueError(f"style id {sid!r} must match {ID_PATTERN.pattern}")
    category = str(entry.get("category", ""))
    if category not in categories:
        raise CatalogueError(f"style {sid}: unknown category {category!r}")
    prompt = entry.get("prompt")
    if not isinstance(prompt, str) or len(prompt) > MAX_TEMPLATE:
        raise CatalogueError(f"style {sid}: prompt must be a string of <= {MAX_TEMPLATE} chars")
    fields = [f for _, f, _, _ in string.Formatter().parse(prompt) if f is not None]
    if fields != [SUBJECT]:
        raise CatalogueError(f"style {sid}: prompt must contain {{subject}} exactly once")
    return Style(
        id=sid,
        category=category,
        title=_localized(f"style {sid} title", entry.get("title"), MAX_TITLE),
        preview=_localized(f"style {sid} preview", entry.get("preview"), MAX_PREVIEW),
        prompt=prompt,
    )
