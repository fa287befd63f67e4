"""Keyboards of the avatar flow: training type (< 2 clicks), gender, photo counter, list."""

from __future__ import annotations

from uuid import UUID

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from contracts import TrainingType
from services.bot.app.keyboards import keyboard, per_language
from services.bot.app.main_menu import MenuCb
from services.bot.app.models import Avatar, Gender
from services.bot.app.texts import Translator
from services.bot.avatars.callbacks import AvatarCb, GenderCb, TrainingTypeCb
from services.bot.credits.callbacks import buy_below
from services.bot.training.callbacks import TrainingCb


@per_language
def gender(t: Translator) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for value in Gender:
        kb.button(text=t.plain(f"avatar.gender_{value.value}"), callback_data=GenderCb(value=value))
    kb.adjust(3)
    return kb.as_markup()


@per_language
def training_type(t: Translator) -> InlineKeyboardMarkup:
    """One click picks a type; the ℹ️ buttons open a short description with a confirm button;
    "buy credits" opens the shop below the card, which stays."""
    kb = InlineKeyboardBuilder()
    for value in TrainingType:
        kb.button(
            text=t.plain(f"avatar.type_{value.value}"),
            callback_data=TrainingTypeCb(action="pick", value=value),
        )
    for value in TrainingType:
        kb.button(
            text=t.plain(f"avatar.type_{value.value}_info"),
            callback_data=TrainingTypeCb(action="info", value=value),
        )
    kb.adjust(2, 2)
    kb.row(buy_below(t))
    return kb.as_markup()


@per_language
def training_type_confirm(t: Translator, value: TrainingType) -> InlineKeyboardMarkup:
    return keyboard(
        t,
        ("avatar.type_confirm", TrainingTypeCb(action="pick", value=value)),
        ("menu.back", TrainingTypeCb(action="back", value=value)),
        rows=(1,),
    )


def photo_counter(t: Translator, avatar_id: UUID, ready: bool) -> InlineKeyboardMarkup | None:
    if not ready:
        return None
    return keyboard(t, ("training.start_button", TrainingCb(action="start", avatar_id=avatar_id)))


def avatar_list(t: Translator, avatars: list[Avatar]) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for avatar in avatars:
        kb.button(
            text=t.plain(
                "avatars.item", name=avatar.name, status=t.plain(f"status.{avatar.status}")
            ),
            callback_data=AvatarCb(action="view", avatar_id=avatar.id),
        )
    kb.button(text=t.plain("menu.create"), callback_data=MenuCb(action="create"))
    kb.button(text=t.plain("menu.back"), callback_data=MenuCb(action="main"))
    kb.adjust(1)
    return kb.as_markup()


def delete_confirm(t: Translator, avatar_id: UUID) -> InlineKeyboardMarkup:
    return keyboard(
        t,
        ("avatars.delete_yes", AvatarCb(action="delete_yes", avatar_id=avatar_id)),
        ("avatars.delete_no", AvatarCb(action="view", avatar_id=avatar_id)),
        rows=(2,),
    )
