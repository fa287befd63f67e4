"""Static keyboards are built once per language and arguments, and say the right language."""

from __future__ import annotations

from contracts import TrainingType
from services.bot.app import main_menu as menu
from services.bot.app.models import Gender
from services.bot.app.texts import Texts, Translator
from services.bot.avatars import keyboards as avatar

TEXTS = Texts.load()


def _labels(markup: object) -> list[str]:
    return [b.text for row in markup.inline_keyboard for b in row]  # type: ignore[attr-defined]


def test_one_markup_per_language_and_arguments() -> None:
    en, ru = Translator(TEXTS, "en"), Translator(TEXTS, "ru")
    assert menu.main_menu(en) is menu.main_menu(Translator(TEXTS, "en"))
    assert menu.main_menu(en) is not menu.main_menu(ru)
    assert _labels(menu.main_menu(ru)) != _labels(menu.main_menu(en))
    portrait = avatar.training_type_confirm(en, TrainingType.PORTRAIT)
    style = avatar.training_type_confirm(en, TrainingType.STYLE)
    assert portrait is avatar.training_type_confirm(en, TrainingType.PORTRAIT)
    assert portrait is not style
    assert portrait.inline_keyboard[0][0].callback_data != style.inline_keyboard[0][0].callback_data


def test_cached_keyboard_equals_a_fresh_build() -> None:
    ru = Translator(TEXTS, "ru")
    fresh = avatar.gender.__wrapped__(ru)  # type: ignore[attr-defined]
    assert avatar.gender(ru) == fresh
    assert _labels(avatar.gender(ru)) == [ru.plain(f"avatar.gender_{g}") for g in Gender]
