"""Router-level callback filters: each feature router skips other features' buttons at once,
and never hides one of its own handlers (dispatch stays exactly what the handlers decide)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram import Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.filters.callback_data import CallbackData, CallbackQueryFilter
from aiogram.types import CallbackQuery, Chat, Message
from aiogram.types import User as TgUser

from services.bot.app.features import get_routers
from services.bot.app.filters import CallbackPrefixes
from services.bot.app.routing import FeatureRouter

ROUTERS = get_routers()

# What each router admits; routers not listed have no prefix filter.
EXPECTED = {
    "shop": {"shop"},
    "share": {"img"},
    "gallery": {"gal", "galm", "img"},
    "upscale": {"up"},
    "animate": {"an"},
    "start": {"menu"},
    "settings": {"menu", "lang"},
    "privacy": {"privacy", "keep"},
    "generate": {"gen", "gcat", "gsty", "gar", "gnum", "grun"},
    "packs": {"pk", "pkgo"},
    "reference": {"ref"},
    "describe": {"gen"},
    "avatar": {"menu", "gender", "training_type"},
    "training": {"training"},
    "avatars": {"menu", "avatar"},
}


def _query(data: str | None, chat_type: str = "private") -> CallbackQuery:
    chat = Chat(id=1, type=chat_type)
    message = Message(message_id=1, date=datetime.now(UTC), chat=chat)
    user = TgUser(id=1, is_bot=False, first_name="U")
    return CallbackQuery(id="1", from_user=user, chat_instance="c", data=data, message=message)


def _handler_classes(router: Router) -> list[set[type[CallbackData]]]:
    """For each callback handler, the CallbackData classes its filters unpack (empty: none)."""
    return [
        {
            f.callback.callback_data
            for f in h.filters or []
            if isinstance(f.callback, CallbackQueryFilter)
        }
        for h in router.callback_query.handlers
    ]


def _prefix_filter(router: Router) -> CallbackPrefixes | None:
    root = router.callback_query._handler.filters or []
    found = [f.callback for f in root if isinstance(f.callback, CallbackPrefixes)]
    assert len(found) <= 1
    return found[0] if found else None


def _sample(cls: type[CallbackData]) -> str:
    """Data with the class's prefix and the right number of parts."""
    return cls.__separator__.join([cls.__prefix__, *("x" for _ in cls.model_fields)])


async def _admits(router: Router, data: str | None, chat_type: str = "private") -> bool:
    result, _ = await router.callback_query.check_root_filters(_query(data, chat_type))
    return bool(result)


ALL_CLASSES = {cls for r in ROUTERS for classes in _handler_classes(r) for cls in classes}
ALL_PREFIXES = {cls.__prefix__ for cls in ALL_CLASSES}


def test_prefix_filters_are_where_expected() -> None:
    got = {r.name: set(f.prefixes) for r in ROUTERS if (f := _prefix_filter(r)) is not None}
    assert got == EXPECTED


@pytest.mark.parametrize("router", ROUTERS, ids=lambda r: r.name)
def test_filtered_iff_every_callback_handler_is_typed(router: Router) -> None:
    """A catch-all (or untyped) callback handler needs an unfiltered router, and a router whose
    callback handlers are all typed gets a prefix filter listing exactly their prefixes."""
    handlers = _handler_classes(router)
    prefix_filter = _prefix_filter(router)
    if not handlers or not all(handlers):
        assert prefix_filter is None
        return
    assert prefix_filter is not None
    # Every handler unpacks at least one class whose prefix the router admits, so whatever a
    # handler could accept passes the root filter first.
    for classes in handlers:
        assert any(cls.__prefix__ in prefix_filter.prefixes for cls in classes)
    assert prefix_filter.prefixes == {cls.__prefix__ for classes in handlers for cls in classes}


@pytest.mark.parametrize("router", ROUTERS, ids=lambda r: r.name)
async def test_every_handler_prefix_passes_the_root_filter(router: Router) -> None:
    for classes in _handler_classes(router):
        for cls in classes:
            assert await _admits(router, _sample(cls)), (router.name, cls.__prefix__)
            assert await _admits(router, cls.__prefix__ + cls.__separator__), router.name


@pytest.mark.parametrize("router", [r for r in ROUTERS if r.name in EXPECTED], ids=lambda r: r.name)
async def test_prefixed_router_rejects_foreign_buttons(router: Router) -> None:
    own = EXPECTED[router.name]
    for cls in ALL_CLASSES:
        if cls.__prefix__ not in own:
            assert not await _admits(router, _sample(cls)), (router.name, cls.__prefix__)
    for data in ("nope:1", "", None, "x" + next(iter(own)) + ":1", next(iter(own)) + "x:1"):
        assert not await _admits(router, data), (router.name, data)


async def test_catch_all_routers_still_see_every_button() -> None:
    by_name = {r.name: r for r in ROUTERS}
    for data in [*(p + ":x" for p in ALL_PREFIXES), "nope:1", "forged"]:
        assert await _admits(by_name["fallback"], data)
        assert await _admits(by_name["groups"], data, chat_type="supergroup")
        assert not await _admits(by_name["groups"], data)


class _Dash(CallbackData, prefix="dash", sep="-"):
    n: int


class _Colon(CallbackData, prefix="colon"):
    n: int


async def test_callback_prefixes_compares_the_prefix_only() -> None:
    f = CallbackPrefixes(_Dash, _Colon)
    assert f.prefixes == {"dash", "colon"}
    assert await f(_query(_Dash(n=1).pack()))
    assert await f(_query(_Colon(n=1).pack()))
    assert await f(_query("colon"))  # no separator: prefix still matches (handlers decide)
    assert not await f(_query("dash:1"))  # right name, wrong separator
    assert not await f(_query("colonel:1"))
    assert not await f(_query("col:1"))
    assert not await f(_query(""))
    assert not await f(_query(None))
    with pytest.raises(ValueError, match="at least one"):
        CallbackPrefixes()


def _sync_parts(router: Router) -> list[str]:
    """Every filter and handler aiogram would run through `asyncio.to_thread`."""
    found: list[str] = []
    for name, observer in router.observers.items():
        for root in observer._handler.filters or []:
            if not root.awaitable:
                found.append(f"{router.name}.{name} root filter {root.callback!r}")
        for handler in observer.handlers:
            where = f"{router.name}.{name} {getattr(handler.callback, '__name__', handler)}"
            if not handler.awaitable:
                found.append(f"{where}: the handler")
            found += [
                f"{where}: {f.magic or f.callback!r}"
                for f in handler.filters or []
                if not f.awaitable
            ]
    for child in router.sub_routers:
        found += _sync_parts(child)
    return found


def test_every_filter_and_handler_runs_on_the_event_loop() -> None:
    """aiogram runs a non-coroutine filter or handler (a bare `F…`, a bare `State`) in a
    thread, per check; wrap them in `Is(...)` / `StateFilter(...)` instead."""
    found = [part for router in get_routers() for part in _sync_parts(router)]
    assert found == []


def test_every_feature_router_can_be_passed_by() -> None:
    """Each router in the dispatch order is a FeatureRouter whose callback prefixes are its
    root filter (one source for both), so the shortcut never disagrees with the filter."""
    for router in ROUTERS:
        assert isinstance(router, FeatureRouter), router.name
        assert router.prefixes is _prefix_filter(router), router.name


@pytest.mark.parametrize("router", ROUTERS, ids=lambda r: r.name)
async def test_passed_by_only_when_the_walk_could_not_match(router: FeatureRouter) -> None:
    """The shortcut agrees with aiogram's own root filter for every known button and a few
    unknown ones, and never passes by a type the router has handlers for otherwise."""
    for data in [*(p + ":x" for p in ALL_PREFIXES), "nope:1", "", None]:
        query = _query(data)
        skipped = router.passes_by("callback_query", query)
        if not router.callback_query.handlers:
            assert skipped, router.name
        elif router.prefixes is None:
            assert not skipped, (router.name, data)  # its own root filters decide
        else:
            assert skipped is not router.prefixes.matches(data), (router.name, data)
            assert not (skipped and await _admits(router, data)), (router.name, data)
    for update_type, observer in router.observers.items():
        if update_type != "callback_query":
            skipped = router.passes_by(update_type, _query("x"))
            assert skipped is not bool(observer.handlers), (router.name, update_type)


async def test_a_passed_by_router_runs_nothing_and_the_next_one_answers() -> None:
    """Dispatch through real routers: the press for `b` never reaches `a`'s outer middleware,
    root filter or handlers; a router with no callback handlers is passed by too."""
    seen: list[str] = []

    async def outer(handler: Any, event: Any, data: dict[str, Any]) -> Any:
        seen.append("a.outer")
        return await handler(event, data)

    async def answer_a(query: CallbackQuery) -> str:
        return "a"

    async def answer_b(query: CallbackQuery) -> str:
        return "b"

    async def text(message: Message) -> str:
        return "text"

    a = FeatureRouter(name="a", callbacks=(_Colon,))
    a.callback_query.outer_middleware(outer)
    a.callback_query.register(answer_a, _Colon.filter())
    only_texts = FeatureRouter(name="texts")
    only_texts.message.register(text)
    b = FeatureRouter(name="b", callbacks=(_Dash,))
    b.callback_query.register(answer_b, _Dash.filter())
    root = Router(name="root")
    root.include_routers(a, only_texts, b)

    assert only_texts.passes_by("callback_query", _query("colon:1"))
    assert await root.propagate_event("callback_query", _query(_Dash(n=1).pack())) == "b"
    assert seen == []
    assert await root.propagate_event("callback_query", _query(_Colon(n=2).pack())) == "a"
    assert seen == ["a.outer"]
    assert await root.propagate_event("callback_query", _query("forged")) is UNHANDLED
    assert seen == ["a.outer"]


def test_a_router_with_children_is_never_passed_by() -> None:
    parent = FeatureRouter(name="parent", callbacks=(_Colon,))
    parent.include_router(FeatureRouter(name="child", callbacks=(_Dash,)))
    assert not parent.passes_by("callback_query", _query(_Dash(n=1).pack()))
    assert not parent.passes_by("inline_query", _query("x"))
