"""Button data of upscaling (public: the gallery shows "⬆️ Upscale" under a picture)."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from aiogram.filters.callback_data import CallbackData
from pydantic import Field


class UpscaleCb(CallbackData, prefix="up"):
    """`menu` shows ×2 / ×4 with prices under the picture; `go` starts that factor."""

    action: Literal["menu", "go"]
    image_id: UUID
    #: 2 or 4 for `go` (the router takes no other); 0 for `menu`.
    factor: Annotated[int, Field(ge=0, le=4)] = 0
