"""Button data of reference photos (public: a ready avatar's screen opens the flow)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from aiogram.filters.callback_data import CallbackData
from pydantic import Field


class RefCb(CallbackData, prefix="ref"):
    """`ask` waits for a photo for `avatar_id`; `menu` shows the strengths for a stored
    `reference_id` again; `go` starts that reference at strength `step` (1–3). At most
    ~46 bytes: one uuid only (the reference row knows its avatar)."""

    action: Literal["ask", "menu", "go"]
    avatar_id: UUID | None = None
    reference_id: UUID | None = None
    step: Annotated[int, Field(ge=0, le=3)] = 0
