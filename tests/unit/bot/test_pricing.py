"""Prices: credit packages that never sell credits dearer for more Stars, a price per quality
preset, and the presets each training type is offered (issue 21)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from contracts import FalPriority, TrainingType
from services.bot.app import presets
from services.bot.app.config import BotConfig
from services.bot.app.pricing import DEFAULT_PACKAGES, Pricing, parse_packages
from services.bot.training.callbacks import TrainingCb
from services.kit.config import ConfigError, Env
from services.trainer.presets import plan_training

ROOT = Path(__file__).resolve().parents[3]
BASE = {
    "DATABASE_URL": "postgresql://u:p@localhost/db",
    "TELEGRAM_BOT_TOKEN": "123456:abcdefghijk_-XYZ",
}


def load(**extra: str) -> BotConfig:
    return BotConfig.from_env(Env({**BASE, **extra}))


def test_default_packages_get_cheaper_per_credit_as_they_grow() -> None:
    packages = sorted(parse_packages(DEFAULT_PACKAGES), key=lambda p: p.stars)
    rates = [p.stars / p.credits for p in packages]
    assert rates == sorted(rates, reverse=True)
    assert len(set(rates)) == len(rates)  # each bigger package is strictly better


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        # the old defaults: 250 Stars for 50 credits is 5 a credit, 50 for 20 is 2.5
        ("avatar:250:50,images20:50:20,images100:200:100", "avatar"),
        ("big:500:100,small:100:50", "big"),  # order in the variable does not matter
        ("a:100:50,b:100:40", "both cost 100"),
    ],
)
def test_incoherent_packages_are_refused_naming_them(raw: str, named: str) -> None:
    with pytest.raises(ConfigError, match="CREDIT_PACKAGES") as refused:
        load(CREDIT_PACKAGES=raw)
    assert named in str(refused.value)
    assert "\n" not in str(refused.value)


def test_equal_rates_are_coherent() -> None:
    packages = load(CREDIT_PACKAGES="one:50:20,two:100:40").pricing.packages
    assert [p.id for p in packages] == ["one", "two"]


def test_the_bot_exits_2_with_one_line_on_incoherent_packages(tmp_path: Path) -> None:
    env = {**BASE, "PYTHONPATH": str(ROOT), "CREDIT_PACKAGES": "big:500:100,small:100:50"}
    result = subprocess.run(
        [sys.executable, "-m", "services.bot"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("aisha-bot: configuration error: CREDIT_PACKAGES: big ")


def test_a_price_per_preset_from_the_environment() -> None:
    default = load().pricing
    assert [default.training_price(p) for p in FalPriority] == [30, 50, 60]
    pricing = load(
        CREDITS_TRAINING_SPEED="20", CREDITS_TRAINING_QUALITY="40", CREDITS_TRAINING_HIGH_RES="80"
    ).pricing
    assert [pricing.training_price(p) for p in FalPriority] == [20, 40, 80]
    # the older name of the quality price is still read
    assert load(CREDITS_TRAINING="55").pricing.training_price(FalPriority.QUALITY) == 55


def test_a_faster_preset_may_not_cost_more() -> None:
    with pytest.raises(ConfigError, match="CREDITS_TRAINING_SPEED <= CREDITS_TRAINING_QUALITY"):
        load(CREDITS_TRAINING_SPEED="70")


def test_a_style_is_not_offered_a_high_res_preset_that_trains_like_quality() -> None:
    """The fast trainer has no resolution option: high-res would cost more and buy nothing."""
    assert presets.PRESETS[TrainingType.PORTRAIT] == tuple(FalPriority)
    assert FalPriority.HIGH_RES_ONLY not in presets.PRESETS[TrainingType.STYLE]
    style = {p: plan_training(TrainingType.STYLE, p, "TOK", 1).arguments("u") for p in FalPriority}
    assert style[FalPriority.HIGH_RES_ONLY] == style[FalPriority.QUALITY]


@pytest.mark.parametrize("training_type", list(TrainingType))
def test_typical_durations_follow_the_steps(training_type: TrainingType) -> None:
    """A preset with more steps (or the full-resolution bucket only) never claims to be
    quicker; every offered preset has a duration and a price, and fits in a button."""
    offered = presets.PRESETS[training_type]
    steps = [plan_training(training_type, p, "TOK", 1).steps for p in offered]
    minutes = [presets.TYPICAL_MINUTES[training_type][p] for p in offered]
    assert steps == sorted(steps)
    assert minutes == sorted(minutes)
    for priority in offered:
        data = TrainingCb.go(uuid.uuid4(), priority).pack()
        assert len(data.encode()) <= 64
        assert TrainingCb.unpack(data).priority is priority


def test_price_range() -> None:
    assert presets.price_range(Pricing()) == "30–60"
    assert presets.price_range(Pricing.free_jobs()) == "0"
