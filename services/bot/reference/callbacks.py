"""Button data of reference photos (public: a ready avatar's screen opens the flow)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from aiogram.filters.callback_data import CallbackData
from pydantic import Field


class RefCb(CallbackData, prefix="ref"):
    """`ask` waits for a photo for the avatar `id`; `menu` shows the strengths for the stored
    reference `id` again; `go` starts that reference at strength `step` (1–3). One uuid
    only, whatever the action (the reference row knows its avatar): two would not fit
    Telegram's 64 bytes."""

    action: Literal["ask", "menu", "go"]
    id: UUID
    step: Annotated[int, Field(ge=0, le=3)] = 0
