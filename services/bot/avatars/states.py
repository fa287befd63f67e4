"""FSM states (stored in NATS KV, so a half-done avatar survives a restart)."""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class CreateAvatar(StatesGroup):
    """Name → training type → gender (a portrait only)."""

    name = State()
    training_type = State()
    gender = State()


class Upload(StatesGroup):
    """Collecting photos for `data["avatar_id"]`."""

    photos = State()


class Rename(StatesGroup):
    """Waiting for a new name for `data["avatar_id"]`."""

    name = State()
