"""Every user-facing string lives in `locales/<lang>.toml`; this module only looks them up.

Parameters are HTML-escaped on the way in (messages are sent with parse_mode=HTML), so a
user's avatar name can never inject markup. Button labels are plain text: `plain()`.
"""

from __future__ import annotations

import html
import string
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

LOCALES_DIR = Path(__file__).with_name("locales")
LANGUAGES: tuple[str, ...] = ("en", "ru")
DEFAULT_LANGUAGE = "en"


def language_for(code: str | None) -> str:
    """Telegram's `language_code` → one of ours (ru for Russian, English otherwise)."""
    return "ru" if code and code.lower().split("-")[0] == "ru" else DEFAULT_LANGUAGE


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def placeholders(template: str) -> frozenset[str]:
    """The `{names}` a template expects."""
    return frozenset(f for _, f, _, _ in string.Formatter().parse(template) if f)


class Texts:
    """All locales loaded once; `get(lang, key, **params)` renders a message."""

    def __init__(self, catalogs: Mapping[str, Mapping[str, str]]):
        self._catalogs = {lang: dict(keys) for lang, keys in catalogs.items()}

    @classmethod
    def load(cls, directory: Path = LOCALES_DIR) -> Texts:
        catalogs = {}
        for lang in LANGUAGES:
            with (directory / f"{lang}.toml").open("rb") as f:
                catalogs[lang] = _flatten(tomllib.load(f))
        return cls(catalogs)

    def catalog(self, lang: str) -> Mapping[str, str]:
        return self._catalogs[lang]

    def get(self, lang: str, key: str, **params: object) -> str:
        """The message `key` in `lang` with HTML-escaped parameters."""
        escaped = {k: html.escape(str(v), quote=False) for k, v in params.items()}
        return self._template(lang, key).format(**escaped)

    def plain(self, lang: str, key: str, **params: object) -> str:
        """For button labels and alerts, which Telegram shows without parsing HTML."""
        return self._template(lang, key).format(**params)

    def has(self, key: str) -> bool:
        """Whether a text exists (for names of things the operator configures, such as a
        credit package, that may have none)."""
        return key in self._catalogs[DEFAULT_LANGUAGE]

    def _template(self, lang: str, key: str) -> str:
        catalog = self._catalogs.get(lang) or self._catalogs[DEFAULT_LANGUAGE]
        return catalog.get(key) or self._catalogs[DEFAULT_LANGUAGE][key]


class Translator:
    """`t("key", **params)` bound to one user's language; what handlers receive as `t`."""

    def __init__(self, texts: Texts, lang: str):
        self.texts = texts
        self.lang = lang

    def __call__(self, key: str, **params: object) -> str:
        return self.texts.get(self.lang, key, **params)

    def plain(self, key: str, **params: object) -> str:
        return self.texts.plain(self.lang, key, **params)

    def has(self, key: str) -> bool:
        return self.texts.has(key)
