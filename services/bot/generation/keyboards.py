"""Keyboards of the generation flow; their callback data is in `callbacks.py`."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.app.keyboards import keyboard
from services.bot.app.main_menu import MenuCb
from services.bot.app.models import Avatar
from services.bot.app.texts import Translator
from services.bot.gallery.callbacks import ImageCb
from services.bot.generation.callbacks import (
    GenAspectCb,
    GenCategoryCb,
    GenCb,
    GenCountCb,
    GenRunCb,
    GenStyleCb,
)
from services.bot.generation.draft import ASPECTS, COUNTS, Draft
from services.bot.generation.prompts import Catalogue


def avatar_picker(
    t: Translator, avatars: list[Avatar], main_id: UUID | None
) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for avatar in sorted(avatars, key=lambda a: a.id != main_id):
        star = "⭐ " if avatar.id == main_id else ""
        kb.button(
            text=f"{star}{avatar.name}", callback_data=GenCb(action="avatar", avatar_id=avatar.id)
        )
    kb.button(text=t.plain("generate.quick_button"), callback_data=GenCb(action="quick"))
    kb.button(text=t.plain("menu.back"), callback_data=MenuCb(action="main"))
    kb.adjust(1)
    return kb.as_markup()


def no_avatar(t: Translator) -> InlineKeyboardMarkup:
    return keyboard(
        t,
        ("generate.quick_button", GenCb(action="quick")),
        ("menu.create", MenuCb(action="create")),
        ("menu.back", MenuCb(action="main")),
        rows=(1,),
    )


def source(t: Translator, catalogue: Catalogue) -> InlineKeyboardMarkup:
    """Style categories, own text, and a prompt from a reference photo."""
    kb = InlineKeyboardBuilder()
    for category in catalogue.category_ids:
        kb.button(
            text=catalogue.category_title(category, t.lang),
            callback_data=GenCategoryCb(category=category),
        )
    kb.button(text=t.plain("generate.own_button"), callback_data=GenCb(action="own"))
    kb.button(text=t.plain("generate.describe_button"), callback_data=GenCb(action="describe"))
    kb.button(text=t.plain("menu.back"), callback_data=GenCb(action="home"))
    rows = [2] * (len(catalogue.category_ids) // 2) + [1] * (len(catalogue.category_ids) % 2)
    kb.adjust(*rows, 1, 1, 1)
    return kb.as_markup()


def styles(t: Translator, catalogue: Catalogue, category: str) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for style in catalogue.in_category(category):
        kb.button(text=style.title_in(t.lang), callback_data=GenStyleCb(style_id=style.id))
    kb.button(text=t.plain("menu.back"), callback_data=GenCb(action="src"))
    kb.adjust(2)
    return kb.as_markup()


def settings(t: Translator, draft: Draft) -> InlineKeyboardMarkup:
    """Format and count rows (the current choice marked), then confirm."""
    kb = InlineKeyboardBuilder()
    for code, ratio in ASPECTS.items():
        label = f"• {ratio} •" if code == draft.aspect else ratio
        kb.button(text=label, callback_data=GenAspectCb(aspect=code))
    for count in COUNTS:
        label = f"• {count} •" if count == draft.count else str(count)
        kb.button(text=label, callback_data=GenCountCb(count=count))
    kb.button(text=t.plain("generate.go_button"), callback_data=GenCb(action="go"))
    kb.button(text=t.plain("generate.change_button"), callback_data=GenCb(action="src"))
    kb.adjust(len(ASPECTS), len(COUNTS), 1, 1)
    return kb.as_markup()


def described(t: Translator) -> InlineKeyboardMarkup:
    return keyboard(
        t,
        ("generate.use_prompt_button", GenCb(action="cfg")),
        ("generate.edit_prompt_button", GenCb(action="edit")),
        ("menu.back", GenCb(action="src")),
        rows=(2, 1),
    )


def back_to_source(t: Translator) -> InlineKeyboardMarkup:
    return keyboard(t, ("menu.back", GenCb(action="src")))


def results(
    t: Translator, generation_id: UUID, gallery: CallbackData, originals: Sequence[UUID] = ()
) -> InlineKeyboardMarkup:
    """Under the delivered pictures: the original file of each (Telegram recompresses
    photos; numbered in album order), again, more like this, the gallery (`gallery` comes
    from the caller: the gallery keyboards import this module), the menu."""
    kb = InlineKeyboardBuilder()
    for number, image_id in enumerate(originals, start=1):
        label = (
            t.plain("originals.one")
            if len(originals) == 1
            else t.plain("originals.numbered", number=number)
        )
        kb.button(text=label, callback_data=ImageCb(action="doc", image_id=image_id))
    kb.adjust(min(len(originals), 5) or 1)
    kb.attach(
        InlineKeyboardBuilder.from_markup(
            keyboard(
                t,
                ("generate.again_button", GenRunCb(action="again", generation_id=generation_id)),
                ("generate.more_button", GenRunCb(action="more", generation_id=generation_id)),
                ("gallery.open_button", gallery),
                ("generate.menu_short", MenuCb(action="main")),
                rows=(2, 2),
            )
        )
    )
    return kb.as_markup()


def failed(t: Translator, generation_id: UUID) -> InlineKeyboardMarkup:
    return keyboard(
        t,
        ("generate.again_button", GenRunCb(action="again", generation_id=generation_id)),
        ("generate.menu_short", MenuCb(action="main")),
        rows=(2,),
    )
