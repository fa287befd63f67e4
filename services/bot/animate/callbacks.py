"""Button data of animation (public: the gallery shows "🎬 Animate" under a picture)."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from aiogram.filters.callback_data import CallbackData


class AnimateCb(CallbackData, prefix="an"):
    """`menu` offers the video with its price and asks for a motion prompt; `go` starts it
    without one (the "skip" button); `cancel` drops the offer."""

    action: Literal["menu", "go", "cancel"]
    image_id: UUID
