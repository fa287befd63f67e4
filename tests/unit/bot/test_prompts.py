"""The prompt system: the style catalogue (data file) and the prompt builder."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from contracts import FalPriority, TrainingType
from services.bot.app.models import Avatar, AvatarStatus, Gender
from services.bot.app.texts import LANGUAGES
from services.bot.generation.callbacks import GenCategoryCb, GenRunCb, GenStyleCb
from services.bot.generation.draft import ASPECTS, Draft
from services.bot.generation.prompts import (
    Catalogue,
    CatalogueError,
    PromptRejected,
    Subject,
    build,
    from_caption,
    vary,
)
from services.bot.generation.prompts.builder import MAX_PROMPT, MAX_USER_PROMPT, clean, user_text


def avatar(
    gender: Gender | None = Gender.FEMALE, kind: TrainingType = TrainingType.PORTRAIT
) -> Avatar:
    return Avatar(
        id=uuid.uuid4(), user_id=1, name="Anna", gender=gender, status=AvatarStatus.COMPLETED,
        training_type=kind, fal_priority=FalPriority.QUALITY, trigger_word="TOKxyz",
        training_attempt=1, photo_count=10, progress_chat_id=None, progress_message_id=None,
    )  # fmt: skip


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


# --- catalogue --------------------------------------------------------------------------------


def test_catalogue_has_enough_styles_in_enough_categories(catalogue: Catalogue) -> None:
    assert len(catalogue) >= 24
    categories = set(catalogue.category_ids)
    assert {"portrait", "business", "fashion", "travel", "fantasy", "seasonal"} <= categories
    for category in catalogue.category_ids:
        assert catalogue.in_category(category), category
        for lang in LANGUAGES:
            assert catalogue.category_title(category, lang)


def test_every_style_is_translated_and_puts_the_subject_in(catalogue: Catalogue) -> None:
    for style in catalogue:
        for lang in LANGUAGES:
            assert style.title_in(lang).strip(), (style.id, lang)
            assert style.preview_in(lang).strip(), (style.id, lang)
        assert style.title_in("en") != style.title_in("ru"), style.id
        assert style.prompt.count("{subject}") == 1, style.id
        assert "TOKxyz woman" in style.render("TOKxyz woman"), style.id


def test_style_ids_fit_in_callback_data(catalogue: Catalogue) -> None:
    for style in catalogue:
        assert len(GenStyleCb(style_id=style.id).pack().encode()) <= 64
        assert len(GenCategoryCb(category=style.category).pack().encode()) <= 64
    assert len(GenRunCb(action="again", generation_id=uuid.uuid4()).pack().encode()) <= 64


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('id = "x"\ncategory = "p"\nprompt = "photo"\n', "{subject}"),
        ('id = "x"\ncategory = "p"\nprompt = "{subject} {other}"\n', "{subject}"),
        ('id = "X Y"\ncategory = "p"\nprompt = "{subject}"\n', "style id"),
        ('id = "x"\ncategory = "nope"\nprompt = "{subject}"\n', "unknown category"),
    ],
)
def test_broken_entries_are_refused_with_a_message(
    tmp_path: Path, entry: str, problem: str
) -> None:
    texts = 'title = { en = "T", ru = "Т" }\npreview = { en = "P", ru = "П" }\n'
    data = f'[categories]\np = {{ en = "P", ru = "П" }}\n\n[[style]]\n{entry}{texts}'
    path = tmp_path / "styles.toml"
    path.write_text(data, encoding="utf-8")
    with pytest.raises(CatalogueError, match=problem):
        Catalogue.load(path)


def test_a_missing_translation_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "styles.toml"
    path.write_text(
        '[categories]\np = { en = "P", ru = "П" }\n\n[[style]]\nid = "x"\ncategory = "p"\n'
        'prompt = "{subject}"\ntitle = { en = "T" }\npreview = { en = "P", ru = "П" }\n',
        encoding="utf-8",
    )
    with pytest.raises(CatalogueError, match="missing 'ru'"):
        Catalogue.load(path)


# --- builder ---------------------------------------------------------------------------------


def test_clean_removes_control_zero_width_and_bidi_characters() -> None:
    raw = "  a\x00b\u200bc \u202eevil\u202c\n\n\tnew   line\x7f "
    assert clean(raw) == "abc evil new line"


def test_user_text_bounds_the_length() -> None:
    assert user_text("x" * MAX_USER_PROMPT) == "x" * MAX_USER_PROMPT
    with pytest.raises(PromptRejected) as rejected:
        user_text("word " * 2000)  # 10,000 characters
    assert (rejected.value.code, rejected.value.length) == ("too_long", 9999)
    with pytest.raises(PromptRejected, match="empty"):
        user_text(" \u200b\x00 ")


def test_trigger_word_and_gender_are_injected_into_free_text() -> None:
    subject = Subject.of(avatar(Gender.FEMALE))
    assert build(subject, style=None, text="on a beach") == "photo of TOKxyz woman, on a beach"
    male = Subject.of(avatar(Gender.MALE))
    assert build(male, style=None, text="in a suit").startswith("photo of TOKxyz man, ")
    # the user named the trigger word already: kept as written, not doubled
    assert build(subject, style=None, text="TOKxyz riding a horse") == "TOKxyz riding a horse"


def test_a_style_template_gets_the_subject_and_the_users_details(catalogue: Catalogue) -> None:
    style = catalogue.get("headshot")
    assert style is not None
    prompt = build(Subject.of(avatar()), style=style, text="  with  glasses\x00 ")
    assert prompt.startswith("corporate headshot photo of TOKxyz woman wearing")
    assert prompt.endswith(", with glasses")


def test_a_style_avatar_applies_its_look_to_the_picture_asked_for(catalogue: Catalogue) -> None:
    """A style LoRA learned a look (FAL's `is_style`), not a person: the prompt is the user's
    subject "in the style of" the trigger word, never "photo of TOKxyz person"."""
    look = Subject.of(avatar(gender=None, kind=TrainingType.STYLE))
    prompt = build(look, style=None, text="a lighthouse at dusk")
    assert prompt == "a lighthouse at dusk, in the style of TOKxyz"
    assert "photo of TOKxyz" not in prompt
    assert "person" not in prompt
    # the user named the trigger already: kept as written
    assert build(look, style=None, text="TOKxyz cat") == "TOKxyz cat"
    studio = catalogue.get("studio")
    assert studio is not None
    templated = build(look, style=studio, text="with a hat")
    assert templated.startswith("professional studio portrait photo of a person")
    assert templated.endswith(", with a hat, in the style of TOKxyz")
    # a prompt cut to the limit still ends with the look
    long = build(look, style=None, text="very " * 400)
    assert len(long) <= MAX_PROMPT
    assert long.endswith(", in the style of TOKxyz")
    caption = from_caption("A photograph of a young woman standing on a pier.", look)
    assert caption == "a young woman standing on a pier, in the style of TOKxyz"
    assert from_caption("word " * 1000, look).endswith("in the style of TOKxyz")


def test_a_portrait_without_a_stored_gender_is_a_person() -> None:
    subject = Subject.of(avatar(gender=None))
    assert build(subject, style=None, text="on a boat") == "photo of TOKxyz person, on a boat"


def test_quick_mode_has_its_own_subject() -> None:
    quick = Subject.of(None)
    assert quick.trigger is None
    assert build(quick, style=None, text="a red fox") == "a red fox"


def test_the_final_prompt_is_bounded(catalogue: Catalogue) -> None:
    style = catalogue.get("elf")
    assert style is not None
    prompt = build(Subject.of(avatar()), style=style, text="very " * 400)
    assert len(prompt) <= MAX_PROMPT
    assert not prompt.endswith(" ")


def test_more_like_this_varies_without_piling_up() -> None:
    first = vary("photo of TOKxyz woman, on a beach", 1)
    second = vary(first, 2)
    assert first != second
    assert first.startswith("photo of TOKxyz woman, on a beach, ")
    assert second.count(",") == first.count(",")


def test_a_caption_becomes_a_prompt_for_the_avatar() -> None:
    subject = Subject.of(avatar(Gender.MALE))
    prompt = from_caption("A photograph of a young woman standing on a pier at sunset.", subject)
    assert prompt == "photo of TOKxyz man, standing on a pier at sunset"
    scenery = from_caption("A misty forest with tall pine trees", subject)
    assert scenery == "photo of TOKxyz man, A misty forest with tall pine trees"
    assert len(from_caption("word " * 1000, subject)) <= MAX_USER_PROMPT


def test_draft_survives_storage_and_refuses_garbage() -> None:
    draft = Draft(avatar_id=uuid.uuid4(), avatar_name="Anna").with_style("studio")
    draft = draft.with_format(aspect="9_16", count=4)
    restored = Draft.from_fsm(draft.to_fsm())
    assert restored == draft
    assert restored is not None
    assert restored.aspect_ratio == "9:16"
    assert draft.with_format(aspect="2_1", count=9) == draft  # unknown values change nothing
    assert Draft.from_fsm({"draft": {"avatar_id": "not-a-uuid"}}) is None
    assert Draft.from_fsm({}) is None
    assert set(ASPECTS.values()) == {"1:1", "3:4", "4:3", "9:16", "16:9"}
