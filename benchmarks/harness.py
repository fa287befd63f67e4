"""Runs the selected measurements on one lab and collects the rows of the report.

Baselines run first (the scenarios' ratios need them), then the scenarios in order. A
measurement that fails becomes a row with its error, and the others still run.
"""

from __future__ import annotations

import json
import logging
import math
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks import (
    baselines,
    bot_updates,
    completion,
    fanout,
    least,
    pipeline,
    rawstack,
    scale,
    webhook_ingest,
)
from benchmarks.lab import Lab
from benchmarks.report import Row, machine, render
from benchmarks.sizes import FULL, QUICK

log = logging.getLogger("benchmarks")

Baseline = Callable[[Lab], Awaitable[Row]]
Scenario = Callable[[Lab, dict[str, Row]], Awaitable[Row | list[Row]]]

BASELINES: dict[str, tuple[str, Baseline]] = {
    "raw_http": ("raw aiohttp POST → 200", baselines.raw_http),
    "least_ingest": ("least webhook ingest", least.least_ingest),
    "least_completion": ("least completion → user", least.least_completion),
    "pg_update": ("raw asyncpg UPDATE by key", baselines.pg_update),
    "js_publish": ("raw JetStream publish", rawstack.js_publish),
    "js_consume": ("raw JetStream pull + ack", rawstack.js_consume),
    "aiogram_polling": ("aiogram no-op, getUpdates", rawstack.aiogram_polling),
    "aiogram_feed": ("aiogram no-op, feed_update", rawstack.aiogram_feed),
    "aiogram_dialogue": ("least bot, same dialogue", rawstack.aiogram_dialogue),
}
SCENARIOS: dict[str, tuple[str, tuple[str, ...], Scenario]] = {
    "webhook_ingest": ("1. webhook ingest", webhook_ingest.NEEDS, webhook_ingest.run),
    "completion": ("2. completion → user", completion.NEEDS, completion.run),
    "bot_updates": ("3. bot updates", bot_updates.NEEDS, bot_updates.run),
    "scale": ("4. scale: 10k in flight", scale.NEEDS, scale.run),
    "fanout": ("5. Telegram fan-out", fanout.NEEDS, fanout.run),
    "pipeline": ("6. events vs FastStream", pipeline.NEEDS, pipeline.run),
}
NOISE = (
    "Measured on a shared 2-core machine while other test suites may be running: treat the "
    "numbers as noisy (ratios are measured within one run to cancel part of it)."
)


@dataclass
class Options:
    quick: bool = False
    only: tuple[str, ...] = ()
    json_path: Path | None = None
    profile_dir: Path | None = None
    pg_admin_url: str | None = None
    nats_url: str | None = None
    repeats: int | None = None


@dataclass
class Outcome:
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0
    document: dict[str, Any] = field(default_factory=dict)
    table: str = ""


def plan(only: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(baselines, scenarios) to run for `--only` names (empty: everything)."""
    unknown = [n for n in only if n not in BASELINES and n not in SCENARIOS]
    if unknown:
        names = ", ".join([*BASELINES, *SCENARIOS])
        raise ValueError(f"unknown measurement {', '.join(unknown)}; known: {names}")
    scenarios = [s for s in SCENARIOS if not only or s in only]
    if only and not any(n in SCENARIOS for n in only):
        scenarios = []
    needed = {n for n in only if n in BASELINES}
    for name in scenarios:
        needed.update(SCENARIOS[name][1])
    return [b for b in BASELINES if not only or b in needed], scenarios


async def run(options: Options) -> Outcome:
    sizes = QUICK if options.quick else FULL
    if options.repeats is not None:
        sizes = replace(
            sizes,
            repeats=options.repeats,
            tail_repeats=options.repeats,
            baseline_repeats=options.repeats,
        )
    base_names, scenario_names = plan(options.only)
    outcome = Outcome()
    started = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    if options.profile_dir is not None:
        options.profile_dir.mkdir(parents=True, exist_ok=True)
    async with Lab(
        sizes,
        pg_admin_url=options.pg_admin_url,
        nats_url=options.nats_url,
        profile_dir=options.profile_dir,
    ) as lab:
        done: dict[str, Row] = {}
        for name in base_names:
            title, measure = BASELINES[name]
            rows = await _guarded(name, title, "baseline", partial(measure, lab), options)
            done[name] = rows[0]
            outcome.rows += rows
        for name in scenario_names:
            title, _, scenario = SCENARIOS[name]
            outcome.rows += await _guarded(
                name, title, "scenario", partial(scenario, lab, done), options
            )
    outcome.seconds = time.perf_counter() - started
    outcome.table = render(outcome.rows)
    outcome.document = {
        "mode": "quick" if options.quick else "full",
        "started_at": started_at,
        "seconds": round(outcome.seconds, 1),
        "machine": machine(),
        "caveat": NOISE,
        "rows": [r.to_json() for r in outcome.rows],
    }
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(outcome.document, indent=2) + "\n")
    return outcome


async def _guarded(
    key: str,
    title: str,
    kind: str,
    measure: Callable[[], Awaitable[Row | list[Row]]],
    options: Options,
) -> list[Row]:
    """Run one measurement (profiled when asked); a failure becomes an error row."""
    log.warning("running %s", key)
    profiler = _profiler(options)
    try:
        result = await measure()
        rows = result if isinstance(result, list) else [result]
    except Exception as exc:  # one broken measurement must not stop the others
        log.error("%s failed", key, exc_info=True)
        rows = [Row(key, title, kind, error=f"{exc!r}: {traceback.format_exc(limit=-2)}")]
    finally:
        if profiler is not None and options.profile_dir is not None:
            profiler.stop()
            text = profiler.output_text(unicode=True, color=False)
            (options.profile_dir / f"{key}.txt").write_text(text)
    for row in rows:
        if row.ratio is not None and math.isnan(row.ratio):
            row.ratio = None
    return rows


def _profiler(options: Options) -> Any:
    if options.profile_dir is None:
        return None
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    return profiler
