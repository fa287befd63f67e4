"""FSM state of the offer: waiting for the motion prompt of `data["animate_image_id"]`."""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class Animate(StatesGroup):
    motion = State()
