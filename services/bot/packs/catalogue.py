"""The packs (`packs.toml`), validated against the style catalogue when the bot starts.

Like the styles, a pack is content: it carries its own translations, so adding one is a data
change. Validation is strict (every style exists, 4–12 of them, both languages, a known
format) so a broken entry stops the bot at start, and the unit test, not a user's press.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.bot.app.texts import DEFAULT_LANGUAGE, LANGUAGES
from services.bot.generation.prompts import Catalogue, Style

PACKS_FILE = Path(__file__).with_name("packs.toml")
#: Pack ids travel in callback data beside an avatar id and a nonce (64 bytes in all).
ID_PATTERN = re.compile(r"^[a-z0-9_]{1,12}$")
MIN_STYLES, MAX_STYLES = 4, 12
IMAGES = (1, 2)
ASPECTS = {"1_1": "1:1", "3_4": "3:4", "4_3": "4:3", "9_16": "9:16", "16_9": "16:9"}
MAX_TITLE, MAX_DESCRIPTION = 40, 200


class PackError(ValueError):
    """`packs.toml` is not valid; the message names the pack and the field."""


@dataclass(frozen=True, kw_only=True)
class Pack:
    id: str
    title: Mapping[str, str]
    description: Mapping[str, str]
    styles: tuple[Style, ...]
    images: int
    aspect_ratio: str

    @property
    def pictures(self) -> int:
        return len(self.styles) * self.images

    def price(self, per_image: int) -> int:
        return self.pictures * per_image

    def title_in(self, lang: str) -> str:
        return self.title.get(lang) or self.title[DEFAULT_LANGUAGE]

    def description_in(self, lang: str) -> str:
        return self.description.get(lang) or self.description[DEFAULT_LANGUAGE]


class PackCatalogue:
    def __init__(self, packs: list[Pack]):
        self._packs = {pack.id: pack for pack in packs}

    @classmethod
    def load(cls, styles: Catalogue, path: Path = PACKS_FILE) -> PackCatalogue:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        entries = data.get("pack")
        if not isinstance(entries, list) or not entries:
            raise PackError("no [[pack]] entries")
        packs = [_pack(entry, styles) for entry in entries]
        ids = [pack.id for pack in packs]
        if len(set(ids)) != len(ids):
            raise PackError(f"duplicate pack ids in {ids}")
        return cls(packs)

    def get(self, pack_id: str) -> Pack | None:
        return self._packs.get(pack_id)

    def __len__(self) -> int:
        return len(self._packs)

    def __iter__(self) -> Iterator[Pack]:
        return iter(self._packs.values())


def _localized(where: str, value: Any, limit: int) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise PackError(f"{where}: expected a table with {', '.join(LANGUAGES)}")
    out: dict[str, str] = {}
    for lang in LANGUAGES:
        text = value.get(lang)
        if not isinstance(text, str) or not text.strip() or len(text) > limit:
            raise PackError(f"{where}: {lang!r} text missing or longer than {limit}")
        out[lang] = text.strip()
    return out


def _pack(entry: Mapping[str, Any], catalogue: Catalogue) -> Pack:
    pid = str(entry.get("id", ""))
    if not ID_PATTERN.match(pid):
        raise PackError(f"pack id {pid!r} must match {ID_PATTERN.pattern}")
    ids = entry.get("styles")
    if not isinstance(ids, list) or not MIN_STYLES <= len(ids) <= MAX_STYLES:
        raise PackError(f"pack {pid}: styles must list {MIN_STYLES}–{MAX_STYLES} style ids")
    if len(set(ids)) != len(ids):
        raise PackError(f"pack {pid}: a style is listed twice")
    styles = []
    for sid in ids:
        style = catalogue.get(str(sid))
        if style is None:
            raise PackError(f"pack {pid}: unknown style {sid!r}")
        styles.append(style)
    images = entry.get("images", 1)
    if images not in IMAGES:
        raise PackError(f"pack {pid}: images must be one of {IMAGES}")
    aspect = entry.get("aspect", "3_4")
    if aspect not in ASPECTS:
        raise PackError(f"pack {pid}: aspect must be one of {sorted(ASPECTS)}")
    return Pack(
        id=pid,
        title=_localized(f"pack {pid} title", entry.get("title"), MAX_TITLE),
        description=_localized(
            f"pack {pid} description", entry.get("description"), MAX_DESCRIPTION
        ),
        styles=tuple(styles),
        images=int(images),
        aspect_ratio=ASPECTS[aspect],
    )
