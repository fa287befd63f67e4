"""Building inline keyboards: `keyboard` from (locale key, callback data) pairs, and
`per_language` for those that depend only on the language (and a few enum values).

`keyboard` is the shape most screens share — labels straight from the locale, one callback
per button, rows as aiogram's `adjust` — so a feature's keyboard module says only which
buttons, not how to build them. aiogram's `InlineKeyboardBuilder` re-validates the whole
keyboard on every button it adds (pydantic), ~0.3–1 ms per keyboard here, and the same few
screens are rebuilt on every press of a dialogue. A keyboard made by `per_language` is built
once per (language, arguments) and the same markup object is returned after that — never
mutate one.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from functools import lru_cache, wraps
from typing import Concatenate, ParamSpec

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.app.texts import Texts, Translator

P = ParamSpec("P")
Build = Callable[Concatenate[Translator, P], InlineKeyboardMarkup]


def per_language(build: Build[P]) -> Build[P]:
    """Cache `build(t, *args)` by (texts, language, args); the args must be hashable."""

    positional: Callable[..., InlineKeyboardMarkup] = build

    @lru_cache(maxsize=256)
    def cached(texts: Texts, lang: str, *args: Hashable) -> InlineKeyboardMarkup:
        return positional(Translator(texts, lang), *args)

    @wraps(build)
    def keyboard(t: Translator, /, *args: P.args, **kwargs: P.kwargs) -> InlineKeyboardMarkup:
        if kwargs:
            return build(t, *args, **kwargs)
        return cached(t.texts, t.lang, *args)

    return keyboard


def keyboard(
    t: Translator, *buttons: tuple[str, CallbackData], rows: tuple[int, ...] = ()
) -> InlineKeyboardMarkup:
    """Buttons labelled `t.plain(key)`, in order; `rows` as `adjust(*rows)` (none: one row,
    aiogram's default)."""
    kb = InlineKeyboardBuilder()
    for key, data in buttons:
        kb.button(text=t.plain(key), callback_data=data)
    if rows:
        kb.adjust(*rows)
    return kb.as_markup()
