"""The confirmation card: what the training will be, each quality preset with its price and
typical duration (one click starts it), the balance, and a way to buy credits."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.app import presets
from services.bot.app.models import Avatar
from services.bot.app.pricing import Pricing
from services.bot.app.screens import View
from services.bot.app.texts import Translator
from services.bot.credits.callbacks import buy_below
from services.bot.training.callbacks import TrainingCb


def card(t: Translator, avatar: Avatar, pricing: Pricing, balance: int) -> View:
    head = t(
        "presets.card",
        name=avatar.name,
        type=t.plain(f"avatar.type_{avatar.training_type.value}"),
        photos=avatar.photo_count,
    )
    lines = presets.preset_lines(t, pricing, avatar.training_type)
    text = "\n\n".join((head, lines, t("presets.balance", balance=balance)))
    return View(text, _keyboard(t, avatar, pricing))


def _keyboard(t: Translator, avatar: Avatar, pricing: Pricing) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for priority in presets.PRESETS[avatar.training_type]:
        kb.button(
            text=presets.preset_button(t, pricing, avatar.training_type, priority),
            callback_data=TrainingCb.go(avatar.id, priority),
        )
    kb.adjust(1)
    kb.row(buy_below(t))
    return kb.as_markup()
