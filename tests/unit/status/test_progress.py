"""Progress: a percentage only from a log line that plainly carries one, else an estimate
from time that never reaches 100 % before the end, learned from our completed trainings."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.fal.endpoints import LOG_PROFILES
from services.status.estimate import CAP, STARTING_SECONDS_PER_STEP, TypicalDurations, estimate
from services.status.progress import percent_from_logs

PORTRAIT = "fal-ai/flux-lora-portrait-trainer"
STYLE = "fal-ai/flux-lora-fast-training"


def lines(profile: str, upto: int, steps: int = 1000) -> list[dict[str, Any]]:
    """What the emulator's trainer prints with `profile` up to tick `upto` of 10."""
    render = LOG_PROFILES[profile]
    if render is None:
        return []
    return [
        {"message": render(steps * tick // 10, steps, 10 * tick), "level": "INFO"}
        for tick in range(1, upto + 1)
    ]


@pytest.mark.parametrize("profile", ["tqdm", "steps"])
def test_a_progress_bar_or_step_counter_gives_the_percentage(profile: str) -> None:
    assert percent_from_logs(lines(profile, 4)) == 40
    assert percent_from_logs(lines(profile, 10)) == 99  # only completion says 100


@pytest.mark.parametrize("profile", ["none", "noise"])
def test_no_line_or_numbers_that_are_not_progress_give_no_percentage(profile: str) -> None:
    assert percent_from_logs(lines(profile, 10)) is None


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("progress: 37%", 37),
        ("37.5% done", 37),
        ("400/1000 steps", 40),
        ("step: 3 of 4", 75),
        ("GPU memory 78% used", None),
        ("loss=0.0931 lr=9e-05", None),
        ("sample 2/4", None),
        ("Step 5/3", None),  # not a sane counter
        ("2026-12-06 10:00:00 INFO loaded 12 images", None),
    ],
)
def test_only_plain_progress_counts(message: str, expected: int | None) -> None:
    assert percent_from_logs([{"message": message}]) == expected


def test_the_estimate_grows_with_time_and_stops_at_the_cap() -> None:
    assert estimate(0, 1200) == (0, 1200)
    assert estimate(480, 1200) == (40, 720)
    assert estimate(1199.5, 1200).percent == CAP
    late = estimate(5000, 1200)
    assert late.percent == CAP
    assert late.eta_seconds is None  # longer than usual: no countdown
    assert estimate(10, 0).percent == 0


class Rows:
    """A pool whose `fetch` answers completed runs (endpoint, steps, seconds)."""

    def __init__(self, runs: list[tuple[str, int, float]]) -> None:
        self.runs = runs
        self.calls = 0

    async def fetch(self, _sql: str, *_args: Any) -> list[dict[str, Any]]:
        self.calls += 1
        return [{"fal_endpoint": e, "steps": s, "seconds": sec} for e, s, sec in self.runs]


async def test_typical_durations_start_from_the_documented_value_then_learn() -> None:
    pool = Rows([])
    durations = TypicalDurations(pool)  # type: ignore[arg-type]
    assert await durations.seconds(PORTRAIT, 2500) == pytest.approx(20 * 60)
    assert await durations.seconds(STYLE, 1000) == pytest.approx(
        1000 * STARTING_SECONDS_PER_STEP[STYLE]
    )
    pool.runs = [(PORTRAIT, 2500, 600.0), (PORTRAIT, 2500, 700.0), (PORTRAIT, 2500, 900.0)]
    pool.runs += [(STYLE, 500, 100.0), (STYLE, 500, 120.0)]  # too few to learn from
    await durations.refresh()
    assert durations.typical(PORTRAIT, 2500) == pytest.approx(700.0)  # the median
    assert durations.typical(PORTRAIT, 1250) == pytest.approx(1250 * 700 / 2500)  # per step
    assert durations.typical(STYLE, 500) == pytest.approx(500 * STARTING_SECONDS_PER_STEP[STYLE])
    calls = pool.calls
    await durations.seconds(PORTRAIT, 2500)
    assert pool.calls == calls  # cached until the refresh interval passes
