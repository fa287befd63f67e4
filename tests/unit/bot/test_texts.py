"""Locale files: same keys, same placeholders, and parameters are escaped."""

from __future__ import annotations

import pytest

from contracts import FailureReason
from services.bot.app.models import AvatarStatus
from services.bot.app.texts import LANGUAGES, Texts, Translator, language_for, placeholders


@pytest.fixture(scope="module")
def texts() -> Texts:
    return Texts.load()


def test_locales_have_the_same_keys_and_placeholders(texts: Texts) -> None:
    en, ru = texts.catalog("en"), texts.catalog("ru")
    assert set(en) == set(ru)
    for key in en:
        assert placeholders(en[key]) == placeholders(ru[key]), key


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_code_the_bot_localizes_has_a_text(texts: Texts, lang: str) -> None:
    catalog = texts.catalog(lang)
    for reason in FailureReason:
        assert f"failure.{reason.value}" in catalog
    for status in AvatarStatus:
        assert f"status.{status.value}" in catalog


@pytest.mark.parametrize("lang", LANGUAGES)
def test_help_names_every_user_command(texts: Texts, lang: str) -> None:
    """Commands outside the main menu (credits, promo codes) are found through /help."""
    text = texts.get(lang, "help.text")
    for command in ("/new", "/generate", "/gallery", "/buy", "/balance", "/promo", "/settings"):
        assert command in text, command


def test_parameters_are_html_escaped(texts: Texts) -> None:
    text = texts.get("en", "avatar.ask_gender", name="<b>x</b> & y")
    assert "&lt;b&gt;x&lt;/b&gt; &amp; y" in text
    assert texts.plain("en", "avatars.item", name="<i>", status="s") == "<i> · s"


def test_language_choice_from_telegram_code() -> None:
    assert language_for("ru") == "ru"
    assert language_for("ru-RU") == "ru"
    assert language_for("de") == "en"
    assert language_for(None) == "en"


def test_translator_is_bound_to_a_language(texts: Texts) -> None:
    assert Translator(texts, "ru")("menu.back") != Translator(texts, "en")("menu.back")
