"""The training check's decisions that need no server: the verdict on the test portraits'
scores, which photos a free redo leaves out, the redo's preset, the verdict's screens and
buttons, and the setting that turns the check off."""

from __future__ import annotations

import uuid

import pytest

from contracts import FalPriority, TrainingType
from services.bot.app.config import BotConfig
from services.bot.app.models import Avatar, AvatarStatus, Gender
from services.bot.app.texts import Texts, Translator
from services.bot.avatars.likeness import Identity
from services.bot.training.callbacks import TrainingCb
from services.bot.training.check import Check, CheckState, Decision, judge, weakest
from services.bot.training.check_views import portrait, verdict
from services.kit.config import ConfigError, Env
from services.trainer.presets import REDO_STEPS_FACTOR, plan_training

CENTER = tuple([0.0] * 128)
IDENTITY = Identity(CENTER, 0.2, 10)
T = Translator(Texts.load(), "en")
BASE_ENV = {
    "TELEGRAM_BOT_TOKEN": "123456:check-test",
    "DATABASE_URL": "postgresql://u@localhost/db",
}
AVATAR = Avatar(
    id=uuid.uuid4(), user_id=1, name="Anna", gender=Gender.FEMALE, status=AvatarStatus.COMPLETED,
    training_type=TrainingType.PORTRAIT, fal_priority=FalPriority.QUALITY, trigger_word="ohwx1",
    training_attempt=1, photo_count=10, progress_chat_id=1, progress_message_id=2,
)  # fmt: skip


def _check(state: CheckState, score: float | None, *, redo: bool = False) -> Check:
    return Check(
        avatar_id=AVATAR.id, attempt=1, user_id=1, generation_id=None, paid_attempt=1,
        redo=redo, state=state, reason=None, scores=(score, score), score=score, decision=None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("scores", "want"),
    [
        ([96.0, 91.0], (CheckState.PASSED, 93.5, None)),
        ([12.0, 30.0], (CheckState.POOR, 21.0, None)),
        ([90.0, None], (CheckState.PASSED, 90.0, None)),  # a picture without a face is n/a
        ([10.0, 90.0, 20.0], (CheckState.POOR, 20.0, None)),  # the median, not the best
        ([40.0, 40.0], (CheckState.PASSED, 40.0, None)),  # the "low" band starts below 40
        ([None, None], (CheckState.SKIPPED, None, "no_face")),
        ([], (CheckState.SKIPPED, None, "no_face")),
    ],
)
def test_the_verdict_is_the_median_against_the_low_band(
    scores: list[float | None], want: tuple[CheckState, float | None, str | None]
) -> None:
    assert judge(scores) == want


def _photo(warnings: tuple[str, ...] = (), faces: int = 1, far: bool = False) -> dict:
    embedding = [0.0] * 128
    if far:
        embedding[0] = 2.0  # ten times a person's spread: someone else
    return {"id": uuid.uuid4(), "warnings": list(warnings), "face_count": faces,
            "embedding": embedding if faces == 1 else None}  # fmt: skip


def test_a_redo_leaves_out_the_weakest_flagged_photos_first_and_keeps_the_minimum() -> None:
    clean = [_photo() for _ in range(9)]
    blurry = _photo(("blurry",))
    stranger = _photo(far=True)
    dark_and_small = _photo(("dark", "small_face"))
    none = _photo(faces=0)
    photos = [*clean, blurry, stranger, dark_and_small, none]
    out = weakest(photos, IDENTITY, keep=10)
    assert len(out) == 3  # 13 photos, 10 kept
    assert set(out) == {stranger["id"], dark_and_small["id"], blurry["id"]} or set(out) == {
        stranger["id"], dark_and_small["id"], none["id"],
    }  # fmt: skip
    assert out[0] == stranger["id"]  # someone else's face weighs most
    assert not {p["id"] for p in clean} & set(out)  # never a photo with nothing wrong


def test_a_redo_never_leaves_out_a_clean_photo_even_with_room() -> None:
    photos = [_photo() for _ in range(15)]
    assert weakest(photos, IDENTITY, keep=10) == []
    assert weakest([_photo(("blurry",))] * 1 + photos[:9], IDENTITY, keep=10) == []


def test_without_an_identity_only_the_gates_flags_count() -> None:
    stranger = _photo(far=True)
    blurry = _photo(("blurry",))
    out = weakest([stranger, blurry, *[_photo() for _ in range(10)]], None, keep=10)
    assert out == [blurry["id"]]


@pytest.mark.parametrize("training_type", list(TrainingType))
def test_a_redo_trains_longer_with_the_same_preset_otherwise(training_type: TrainingType) -> None:
    first = plan_training(training_type, FalPriority.QUALITY, "TOK", 1)
    redo = plan_training(training_type, FalPriority.QUALITY, "TOK", 2, redo=True)
    assert redo.steps == round(first.steps * REDO_STEPS_FACTOR) > first.steps
    assert redo.endpoint == first.endpoint
    assert redo.learning_rate == first.learning_rate
    assert "redo" in redo.finetune_comment


def test_a_poor_verdict_offers_its_three_answers_and_names_the_refund() -> None:
    view = verdict(T, AVATAR, _check(CheckState.POOR, 12.0), credits=150)
    assert "likeness 12%" in view.text
    assert "at least 40%" in view.text
    assert "is ready" not in view.text
    assert view.markup is not None
    rows = view.markup.inline_keyboard
    assert [b.text for row in rows for b in row] == [
        "🔁 Retrain free", "↩️ Refund 150 credits", "✅ Keep it as it is",
    ]  # fmt: skip
    data = [TrainingCb.unpack(b.callback_data or "") for row in rows for b in row]
    assert [d.action for d in data] == ["redo", "refund", "keep"]
    assert all(d.avatar_id == AVATAR.id for d in data)
    assert all(len((b.callback_data or "").encode()) <= 64 for row in rows for b in row)


def test_a_poor_redo_offers_no_second_redo_and_a_free_one_no_refund() -> None:
    view = verdict(T, AVATAR, _check(CheckState.POOR, 20.0, redo=True), credits=150)
    assert view.markup is not None
    labels = [b.text for row in view.markup.inline_keyboard for b in row]
    assert labels == ["↩️ Refund 150 credits", "✅ Keep it as it is"]
    free = verdict(T, AVATAR, _check(CheckState.POOR, 20.0, redo=True), credits=0)
    assert free.markup is not None
    assert [b.text for row in free.markup.inline_keyboard for b in row] == ["✅ Keep it as it is"]


def test_a_passed_verdict_is_ready_with_its_score_in_both_languages() -> None:
    view = verdict(T, AVATAR, _check(CheckState.PASSED, 93.4), credits=150)
    assert "is ready" in view.text
    assert "Likeness check: 93% on 2 test portraits" in view.text
    ru = verdict(Translator(Texts.load(), "ru"), AVATAR, _check(CheckState.PASSED, 93.4), 150)
    assert "готов" in ru.text
    assert "Проверка сходства: 93%" in ru.text


def test_decisions_are_the_callbacks_actions() -> None:
    assert {d.value for d in Decision} == {"redo", "refund", "keep"}


@pytest.mark.parametrize(("raw", "want"), [(None, 2), ("0", 0), ("4", 4)])
def test_the_number_of_test_portraits_is_configurable_and_zero_turns_it_off(
    raw: str | None, want: int
) -> None:
    env = dict(BASE_ENV)
    if raw is not None:
        env["BOT_TRAINING_CHECK_PICTURES"] = raw
    assert BotConfig.from_env(Env(env)).training_check_pictures == want


def test_more_test_portraits_than_fal_draws_at_once_is_refused() -> None:
    with pytest.raises(ConfigError, match="BOT_TRAINING_CHECK_PICTURES"):
        BotConfig.from_env(Env({**BASE_ENV, "BOT_TRAINING_CHECK_PICTURES": "5"}))


def test_a_test_portraits_caption_puts_its_likeness_on_a_line_of_its_own() -> None:
    assert portrait(T, 1, "🪞 Likeness 96% (high)") == "Test portrait 1\n🪞 Likeness 96% (high)"
    assert portrait(T, 2, "") == "Test portrait 2"  # no face: no score line
