"""Callback data stays within Telegram's 64 bytes and refuses forged payloads."""

from __future__ import annotations

import uuid

import pytest

from contracts import TrainingType
from services.bot.app.main_menu import MenuCb
from services.bot.app.models import Gender
from services.bot.avatars.callbacks import AvatarCb, GenderCb, TrainingTypeCb
from services.bot.menu.settings import LangCb
from services.bot.training.callbacks import TrainingCb

AVATAR = uuid.uuid4()
SAMPLES = [
    MenuCb(action="settings"),
    GenderCb(value=Gender.FEMALE),
    TrainingTypeCb(action="info", value=TrainingType.PORTRAIT),
    TrainingCb(action="cancel", avatar_id=AVATAR),
    TrainingCb(action="retry", avatar_id=AVATAR),
    AvatarCb(action="delete_yes", avatar_id=AVATAR),
    LangCb(code="ru"),
]


@pytest.mark.parametrize("data", SAMPLES, ids=lambda d: d.pack())
def test_packed_data_fits_and_round_trips(data) -> None:
    packed = data.pack()
    assert len(packed.encode()) <= 64
    assert type(data).unpack(packed) == data


def test_training_type_uses_the_seed_prefix() -> None:
    assert TrainingTypeCb(action="pick", value=TrainingType.STYLE).pack() == (
        "training_type:pick:style"
    )


@pytest.mark.parametrize(
    "forged", ["training:start:not-a-uuid", "training:explode:" + AVATAR.hex, "lang:de"]
)
def test_forged_data_does_not_unpack(forged: str) -> None:
    cls = {"training": TrainingCb, "lang": LangCb}[forged.split(":")[0]]
    with pytest.raises((ValueError, TypeError)):
        cls.unpack(forged)
