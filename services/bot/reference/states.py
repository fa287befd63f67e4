"""The one FSM state of the flow: waiting for the reference photo (the avatar in FSM data)."""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class Reference(StatesGroup):
    photo = State()


#: FSM data key of the avatar the photo is for.
AVATAR_KEY = "reference_avatar_id"
