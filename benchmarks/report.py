"""Rows of the report (median and spread over repetitions), the Markdown table and the JSON."""

from __future__ import annotations

import math
import os
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks.measure import Run, percentile

PERCENTILES = (50, 90, 99)


@dataclass
class Row:
    """One line of the table: a baseline or a scenario, over all its repetitions."""

    key: str
    title: str
    kind: str  # baseline | scenario
    runs: list[Run] = field(default_factory=list)
    unit: str = "op/s"
    ratio: float | None = None
    ratio_of: str = ""
    target: str = ""
    measured: str = ""
    verdict: bool | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def rates(self) -> list[float]:
        return [r.rate for r in self.runs]

    @property
    def rate(self) -> float:
        return statistics.median(self.rates()) if self.runs else math.nan

    def spread(self) -> tuple[float, float]:
        rates = self.rates()
        return (min(rates), max(rates)) if rates else (math.nan, math.nan)

    def pct_each(self, q: float) -> list[float]:
        return [percentile(r.latencies_ms, q) for r in self.runs if r.latencies_ms]

    def pct(self, q: float) -> float:
        values = self.pct_each(q)
        return statistics.median(values) if values else math.nan

    def extra(self, name: str) -> float:
        values = [r.extra[name] for r in self.runs if name in r.extra]
        return statistics.median(values) if values else math.nan

    def extra_max(self, name: str) -> float:
        values = [r.extra[name] for r in self.runs if name in r.extra]
        return max(values) if values else math.nan

    def judge(self, ok: bool, measured: str) -> None:
        self.verdict, self.measured = ok, measured

    def to_json(self) -> dict[str, Any]:
        low, high = self.spread()
        return {
            "key": self.key,
            "title": self.title,
            "kind": self.kind,
            "unit": self.unit,
            "repeats": len(self.runs),
            "throughput": {"median": _num(self.rate), "min": _num(low), "max": _num(high)},
            "latency_ms": {
                f"p{q}": {
                    "median": _num(self.pct(q)),
                    "min": _num(min(self.pct_each(q), default=math.nan)),
                    "max": _num(max(self.pct_each(q), default=math.nan)),
                }
                for q in PERCENTILES
            },
            "ratio": _num(self.ratio),
            "ratio_of": self.ratio_of,
            "target": self.target,
            "measured": self.measured,
            "pass": self.verdict,
            "notes": self.notes,
            "error": self.error,
            "runs": [
                {
                    "count": r.count,
                    "seconds": round(r.seconds, 4),
                    "rate": round(r.rate, 2),
                    **{f"p{q}_ms": _num(percentile(r.latencies_ms, q)) for q in PERCENTILES},
                    "extra": {k: _num(v) for k, v in r.extra.items()},
                }
                for r in self.runs
            ],
        }


def _num(value: float | None) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return round(value, 3)


def _fmt(value: float, digits: int = 1) -> str:
    if math.isnan(value):
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def _rate_cell(row: Row) -> str:
    if not row.runs or math.isnan(row.rate):
        return "—"
    low, high = row.spread()
    spread = f" ({_fmt(low, 0)}–{_fmt(high, 0)})" if len(row.runs) > 1 else ""
    return f"{_fmt(row.rate, 0)} {row.unit}{spread}"


def _p99_cell(row: Row) -> str:
    each = row.pct_each(99)
    if not each:
        return "—"
    spread = f" ({_fmt(min(each))}–{_fmt(max(each))})" if len(each) > 1 else ""
    return _fmt(row.pct(99)) + spread


def _result(row: Row) -> str:
    if row.error:
        return "ERROR"
    return {True: "pass", False: "FAIL", None: "info"}[row.verdict]


def render(rows: list[Row]) -> str:
    """The Markdown table, then each row's notes."""
    lines = [
        "| measurement | throughput (median, min–max) | p50 ms | p90 ms | p99 ms (min–max) "
        "| ratio | target | measured | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}× {row.ratio_of}".rstrip()
        lines.append(
            f"| {row.title} | {_rate_cell(row)} | {_fmt(row.pct(50), 2)} | {_fmt(row.pct(90), 2)} "
            f"| {_p99_cell(row)} | {ratio} | {row.target or '—'} | {row.measured or '—'} "
            f"| {_result(row)} |"
        )
    notes = [f"* **{r.title}**: {n}" for r in rows for n in r.notes]
    notes += [f"* **{r.title}**: error: {r.error}" for r in rows if r.error]
    return "\n".join(lines + (["", *notes] if notes else []))


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
