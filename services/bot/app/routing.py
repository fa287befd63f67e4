"""`FeatureRouter`: each feature's aiogram Router, passed by in one call by updates it cannot take.

aiogram offers every update to every router in turn, and a visit costs even when nothing in
the router can match: the handler-argument dict is copied three times, the observer's outer
middlewares are wrapped and its root filters awaited — about 20 µs of CPU per router on this
project's machine, so a button of the 13th router paid more for the walk than for its
handler (`docs/performance.md`, scenario 3). Two cases are decided before any of that:

* the router has no handler, no outer middleware and no sub-router for the update's type
  (a feature without inline queries is skipped by every inline query);
* a button press whose prefix is none of the router's `callbacks` — the same test as its root
  filter (`CallbackPrefixes`, still installed), so the outcome of dispatch is unchanged. (aiogram
  would run the router's callback outer middlewares before that filter refused the press;
  here they do not run for presses that are not the router's. No feature router has any.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, TelegramObject

from services.bot.app.filters import CallbackPrefixes


class FeatureRouter(Router):
    """`FeatureRouter(name="avatar", callbacks=(MenuCb, GenderCb))`: a router that owns the
    presses of those CallbackData classes (its root callback filter) and no others."""

    def __init__(self, *, name: str, callbacks: Sequence[type[CallbackData]] = ()) -> None:
        super().__init__(name=name)
        self.prefixes = CallbackPrefixes(*callbacks) if callbacks else None
        if self.prefixes is not None:
            self.callback_query.filter(self.prefixes)

    async def propagate_event(self, update_type: str, event: TelegramObject, **kwargs: Any) -> Any:
        if self.passes_by(update_type, event):
            return UNHANDLED
        return await super().propagate_event(update_type, event, **kwargs)

    def passes_by(self, update_type: str, event: TelegramObject) -> bool:
        """True when aiogram's own walk through this router could only end UNHANDLED."""
        if self.sub_routers:
            return False
        observer = self.observers.get(update_type)
        if observer is None:
            return False
        if not observer.handlers and not observer.outer_middleware:
            return True
        return (
            update_type == "callback_query"
            and self.prefixes is not None
            and isinstance(event, CallbackQuery)
            and not self.prefixes.matches(event.data)
        )
