"""The benchmark harness's quick mode, run once so it never rots.

Asserts that every row was produced with sane numbers — never how fast anything was: the
targets are information for people (docs/performance.md), not a test.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import harness

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value >= 0


async def test_quick_mode_produces_every_row(pg_admin_url: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    options = harness.Options(quick=True, json_path=out, pg_admin_url=pg_admin_url)
    outcome = await harness.run(options)

    errors = {r.key: r.error for r in outcome.rows if r.error}
    assert not errors, errors
    keys = [r.key for r in outcome.rows]
    expected = [*harness.BASELINES, *harness.SCENARIOS, "pipeline_faststream"]
    assert sorted(keys) == sorted(expected)

    document = json.loads(out.read_text())
    assert document["mode"] == "quick"
    assert document["machine"]["nproc"] >= 1
    for row in document["rows"]:
        key = row["key"]
        assert row["repeats"] >= 1, key
        assert all(run["count"] > 0 and run["seconds"] > 0 for run in row["runs"]), key
        assert _finite(row["throughput"]["median"]), key
        assert row["throughput"]["median"] > 0, key
        latency = row["latency_ms"]
        if latency["p50"]["median"] is not None:
            p50, p90, p99 = (latency[p]["median"] for p in ("p50", "p90", "p99"))
            assert 0 <= p50 <= p90 <= p99, (key, latency)
        if row["kind"] == "scenario" and key != "pipeline_faststream":
            assert row["target"], key
            assert row["measured"], key
            assert isinstance(row["pass"], bool), key
        if row["ratio"] is not None:
            assert _finite(row["ratio"]), key

    scale = next(r for r in document["rows"] if r["key"] == "scale")
    extra = scale["runs"][0]["extra"]
    assert 10 < extra["rss_peak_mb"] < 10_000
    assert extra["max_per_second"] >= 1  # the poller did reach FAL

    for row in outcome.rows:
        assert f"| {row.title} |" in outcome.table
