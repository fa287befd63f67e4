"""The packs data file: every pack valid against the style catalogue, and a broken entry
refused at load with the pack named (the bot would exit at start, not fail on a press)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from contracts import FalPriority, TrainingType
from services.bot.app.models import Avatar, AvatarStatus, Gender
from services.bot.app.texts import LANGUAGES
from services.bot.generation.prompts import Catalogue
from services.bot.packs.callbacks import PackGoCb
from services.bot.packs.catalogue import PackCatalogue, PackError
from services.bot.packs.service import specs

STYLES = Catalogue.load()
DOCS = Path(__file__).parents[3] / "docs" / "generation.md"


def test_shipped_packs_are_six_or_more_of_4_to_12_known_styles_in_both_languages() -> None:
    packs = PackCatalogue.load(STYLES)
    assert len(packs) >= 6
    for pack in packs:
        assert 4 <= len(pack.styles) <= 12, pack.id
        assert all(STYLES.get(style.id) is style for style in pack.styles), pack.id
        assert set(pack.title) == set(pack.description) == set(LANGUAGES), pack.id
        assert pack.price(3) == 3 * len(pack.styles) * pack.images


def test_every_pack_is_listed_in_the_docs() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [pack.id for pack in PackCatalogue.load(STYLES) if f"`{pack.id}`" not in text]
    assert missing == []


def test_an_order_button_fits_telegram_s_64_bytes_for_the_longest_id() -> None:
    data = PackGoCb(pack_id="x" * 12, avatar=uuid.uuid4().hex, nonce="0123abcd").pack()
    assert len(data.encode()) <= 64


def test_a_pack_asks_one_generation_per_style_with_the_avatar_s_trigger_word() -> None:
    pack = next(iter(PackCatalogue.load(STYLES)))
    avatar = Avatar(
        id=uuid.uuid4(), user_id=1, name="A", gender=Gender.FEMALE,
        status=AvatarStatus.COMPLETED, training_type=TrainingType.PORTRAIT,
        fal_priority=FalPriority.QUALITY, trigger_word="TOKabc", training_attempt=1,
        photo_count=10, progress_chat_id=None, progress_message_id=None,
    )  # fmt: skip
    made = specs(pack, avatar)
    assert [s.style_id for s in made] == [style.id for style in pack.styles]
    assert all("TOKabc" in s.prompt and s.num_images == pack.images for s in made)
    assert all(s.avatar_id == avatar.id and s.aspect_ratio == pack.aspect_ratio for s in made)


GOOD = """
[[pack]]
id = "p"
title = { en = "P", ru = "П" }
description = { en = "d", ru = "о" }
styles = ["studio", "headshot", "paris", "elf"]
"""


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (GOOD.replace('"elf"', '"dragon"'), "unknown style 'dragon'"),
        (GOOD.replace(', "elf"', ""), "4–12"),
        (GOOD.replace('"elf"', '"studio"'), "listed twice"),
        (GOOD.replace(', ru = "П"', ""), "'ru'"),
        (GOOD + "images = 3\n", "images"),
        (GOOD + 'aspect = "2_1"\n', "aspect"),
        (GOOD.replace('id = "p"', 'id = "Bad id"'), "must match"),
        (GOOD + GOOD, "duplicate"),
    ],
)
def test_a_broken_pack_is_refused_naming_what_is_wrong(
    tmp_path: Path, broken: str, message: str
) -> None:
    path = tmp_path / "packs.toml"
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(PackError, match=message):
        PackCatalogue.load(STYLES, path)


def test_the_sample_itself_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "packs.toml"
    path.write_text(GOOD, encoding="utf-8")
    assert [p.id for p in PackCatalogue.load(STYLES, path)] == ["p"]
