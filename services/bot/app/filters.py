"""Filters that keep dispatch cheap.

`CallbackPrefixes` is a feature router's root callback filter (`routing.FeatureRouter` sets it
and tests it before aiogram's walk): a button meant for another feature skips the whole router
instead of being unpacked (and refused with an exception) by each of its handlers.
"""

from __future__ import annotations

from typing import Any

from aiogram.filters import Filter
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, TelegramObject
from magic_filter import MagicFilter


class CallbackPrefixes(Filter):
    """True when the callback data starts with the prefix of one of the given CallbackData classes.

    A necessary condition of `Cls.filter()` (which unpacks the same prefix), so a router whose
    callback handlers all carry such filters loses nothing by checking it first.
    """

    def __init__(self, *classes: type[CallbackData]) -> None:
        if not classes:
            raise ValueError("CallbackPrefixes needs at least one CallbackData class")
        by_separator: dict[str, set[str]] = {}
        for cls in classes:
            by_separator.setdefault(cls.__separator__, set()).add(cls.__prefix__)
        self._by_separator = tuple((sep, frozenset(p)) for sep, p in by_separator.items())
        self.prefixes = frozenset(cls.__prefix__ for cls in classes)

    async def __call__(self, query: CallbackQuery) -> bool:
        return self.matches(query.data)

    def matches(self, data: str | None) -> bool:
        if not data:
            return False
        return any(data.partition(sep)[0] in prefixes for sep, prefixes in self._by_separator)

    def __str__(self) -> str:
        return self._signature_to_string(*sorted(self.prefixes))


class Is(Filter):
    """`Is(F.text)`: a magic filter on the event, evaluated on the event loop.

    aiogram runs a filter that is not a coroutine — a bare `F…` and a bare `State` among
    them — through `asyncio.to_thread`: a thread hop and a GIL hand-over for every check,
    and every update is checked against many filters on its way through the routers
    (measured: two such filters cost 300 µs of CPU per update and halved the dispatch rate).
    States are wrapped in aiogram's own `StateFilter` for the same reason;
    `tests/unit/bot/test_router_filters.py` keeps every filter and handler a coroutine.
    """

    def __init__(self, magic: MagicFilter) -> None:
        self.magic = magic

    async def __call__(self, event: TelegramObject) -> Any:
        return self.magic.resolve(event)

    def __str__(self) -> str:
        return self._signature_to_string(self.magic)
