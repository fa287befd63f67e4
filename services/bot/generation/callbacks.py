"""Callback data of the generation wizard: ids and short codes only (≤ 64 bytes).

Public: the main menu ("generate") and an avatar's details ("generate with this avatar") open
the wizard with `GenCb`. The draft itself lives in FSM data and is re-checked on use.
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

from services.bot.generation.draft import COUNTS, AspectCode

StyleCode = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,16}$")]


class GenCb(CallbackData, prefix="gen"):
    """Wizard navigation. `avatar` picks one (id), `quick` goes without, `src` is the style /
    prompt screen, `cfg` the settings screen, `go` confirms."""

    action: Literal["home", "avatar", "quick", "src", "own", "describe", "edit", "cfg", "go"]
    avatar_id: UUID | None = None


class GenCategoryCb(CallbackData, prefix="gcat"):
    category: StyleCode


class GenStyleCb(CallbackData, prefix="gsty"):
    style_id: StyleCode


class GenAspectCb(CallbackData, prefix="gar"):
    aspect: AspectCode


class GenCountCb(CallbackData, prefix="gnum"):
    count: Annotated[int, Field(ge=min(COUNTS), le=max(COUNTS))]


class GenRunCb(CallbackData, prefix="grun"):
    """Follow-ups of a finished generation: same settings with a new seed, or a variation."""

    action: Literal["again", "more"]
    generation_id: UUID
