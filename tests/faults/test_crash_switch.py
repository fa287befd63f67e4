"""The crash-point switch itself, and the reconcile window's bounds."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from services.kit import crashpoints
from services.kit.config import ConfigError, Env
from services.trainer.config import TrainerConfig

pytestmark = pytest.mark.faults
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HIT_FIVE_TIMES = (
    "from services.kit.crashpoints import crashpoint\n"
    "for _ in range(5):\n"
    "    crashpoint('trainer.after_commit')\n"
    "print('survived')\n"
)


def run(spec: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, crashpoints.ENV: spec, "PYTHONPATH": ROOT}
    return subprocess.run(
        [sys.executable, "-c", HIT_FIVE_TIMES],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_parse_reads_names_and_hit_counts_and_ignores_unknown_names() -> None:
    armed = crashpoints.parse(
        " trainer.after_commit@3, no.such.point ,bot.after_training_request_commit"
    )
    assert armed == {"trainer.after_commit": 3, "bot.after_training_request_commit": 1}


def test_an_armed_point_exits_137_on_its_nth_hit_without_cleanup() -> None:
    died = run("trainer.after_commit@3")
    assert died.returncode == crashpoints.EXIT_CODE
    assert "crashpoint trainer.after_commit hit 3" in died.stderr
    assert "survived" not in died.stdout


def test_unarmed_or_not_reached_points_do_nothing() -> None:
    assert run("").stdout.strip() == "survived"
    assert run("trainer.after_commit@6").stdout.strip() == "survived"
    assert run("status.before_finish_commit").returncode == 0


def test_every_point_is_placed_in_the_code() -> None:
    sources = ""
    for folder in ("services",):
        for base, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in files:
                if name.endswith(".py") and name != "crashpoints.py":
                    with open(os.path.join(base, name), encoding="utf-8") as f:
                        sources += f.read()
    missing = [p for p in crashpoints.POINTS if f'crashpoint("{p}")' not in sources]
    assert missing == []


def test_reconcile_window_must_fit_the_request_consumers_retries() -> None:
    env = {"FAL_KEY": "k:s", "PUBLIC_BASE_URL": "http://x", "DATABASE_URL": "postgresql://x/y"}
    assert TrainerConfig.from_env(Env(env)).reconcile_minutes == 90
    with pytest.raises(ConfigError, match="TRAINER_RECONCILE_MINUTES"):
        TrainerConfig.from_env(Env({**env, "TRAINER_RECONCILE_MINUTES": "600"}))
    with pytest.raises(ConfigError, match="TRAINER_RECONCILE_MINUTES"):
        TrainerConfig.from_env(Env({**env, "TRAINER_RECONCILE_MINUTES": "0"}))
