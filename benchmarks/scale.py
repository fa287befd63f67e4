"""Scenario 4: 10,000 trainings in flight with the polling fallback doing all the work.

Every training is queued at the FAL emulator and due for a poll at once. The status
process (its defaults: batch 50, a budget of 10 FAL requests/s) polls them for a window
while this process samples its RSS (psutil) and the FAL emulator records each request.
Checks: RSS ≤ 150 MB; FAL requests per second never above the budget (aligned one-second
windows, and any sliding second); the claim query's plan (EXPLAIN, custom and generic,
after ANALYZE) has no Seq Scan on avatars; and PostgreSQL's own counters show no
sequential scan of avatars during the window.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import psutil

from benchmarks import seed
from benchmarks.falhooks import TRAINER_APP
from benchmarks.lab import FAL_BUDGET, POLL_BATCH, POLL_INTERVAL, Lab
from benchmarks.measure import Run
from benchmarks.report import Row
from sandbox.fal.jobs import Job
from services.status.poller import _CLAIM

NEEDS: tuple[str, ...] = ()
RSS_LIMIT_MB = 150.0
TABLES = ("avatars", "fal_webhooks", "outbox")


async def _plans(lab: Lab) -> dict[str, str]:
    async with lab.pool.acquire() as conn:
        await conn.execute("ANALYZE avatars")
        custom = await conn.fetch("EXPLAIN " + _CLAIM, POLL_BATCH, POLL_INTERVAL)
        generic = await conn.fetch("EXPLAIN (GENERIC_PLAN) " + _CLAIM, POLL_BATCH, POLL_INTERVAL)
    return {"custom": "\n".join(r[0] for r in custom), "generic": "\n".join(r[0] for r in generic)}


async def _scans(lab: Lab) -> dict[str, tuple[int, int]]:
    rows = await lab.pool.fetch(
        "SELECT relname, seq_scan, coalesce(idx_scan, 0) AS idx_scan FROM pg_stat_user_tables"
        " WHERE relname = ANY($1::text[])",
        list(TABLES),
    )
    return {r["relname"]: (r["seq_scan"], r["idx_scan"]) for r in rows}


def _per_second(stamps: list[float], start: float, end: float) -> tuple[int, int]:
    """Most requests in an aligned one-second window, and in any sliding second."""
    inside = sorted(s for s in stamps if start <= s < end)
    buckets: dict[int, int] = {}
    for s in inside:
        buckets[int(s - start)] = buckets.get(int(s - start), 0) + 1
    sliding, low = 0, 0
    for high, stamp in enumerate(inside):
        while stamp - inside[low] >= 1.0:
            low += 1
        sliding = max(sliding, high - low + 1)
    return max(buckets.values(), default=0), sliding


async def _window(lab: Lab, process: psutil.Process, seconds: float, start: float) -> Run:
    """Sample RSS until `start + seconds`; count FAL's status/result requests per second."""
    fal = await lab.fal()
    peak = 0
    while time.time() < start + seconds:
        peak = max(peak, process.memory_info().rss)
        await asyncio.sleep(0.2)
    end = time.time()
    stamps = [r.at for r in fal.recorder.find() if r.op in ("status", "result")]
    aligned, sliding = _per_second(stamps, start, end)
    count = sum(1 for s in stamps if start <= s < end)
    return Run(
        count,
        end - start,
        extra={
            "rss_peak_mb": peak / 2**20,
            "rss_end_mb": process.memory_info().rss / 2**20,
            "max_per_second": aligned,
            "max_sliding_second": sliding,
        },
    )


async def run(lab: Lab, baselines: dict[str, Row]) -> Row:
    sizes = lab.sizes
    status, fal = await lab.status(), await lab.fal()
    process = psutil.Process(status.pid)
    row = Row("scale", "4. scale: 10k in flight", "scenario", unit="FAL req/s")
    request_ids = [str(uuid.uuid4()) for _ in range(sizes.scale_trainings)]
    jobs = fal._runner.jobs if fal._runner is not None else {}  # queued forever, no task
    for rid in request_ids:
        jobs[rid] = Job(app_id=TRAINER_APP, arguments={}, request_id=rid)
    rss_before = process.memory_info().rss / 2**20
    scans_before = await _scans(lab)
    start = time.time()
    users = seed.new_user_ids(len(request_ids))
    made = await seed.trainings(lab.pool, users, due=True, request_ids=request_ids)
    try:
        plans = await _plans(lab)
        for i in range(sizes.repeats):
            window_start = start if i == 0 else time.time()
            row.runs.append(await _window(lab, process, sizes.scale_seconds, window_start))
        await asyncio.sleep(1.5)  # PostgreSQL publishes table statistics about once a second
        scans_after = await _scans(lab)
    finally:
        await seed.finish_all(lab.pool, made)
        for rid in request_ids:
            jobs.pop(rid, None)
        await lab.purge_training_events()
    seq = {t: scans_after[t][0] - scans_before[t][0] for t in TABLES if t in scans_after}
    idx = {t: scans_after[t][1] - scans_before[t][1] for t in TABLES if t in scans_after}
    plan_ok = all("Seq Scan on avatars" not in p for p in plans.values())
    used = sorted({m for p in plans.values() for m in re.findall(r"using (\w+) on avatars", p)})
    rss, per_second = row.extra_max("rss_peak_mb"), row.extra_max("max_per_second")
    sliding = row.extra_max("max_sliding_second")
    row.ratio, row.ratio_of = per_second / FAL_BUDGET, f"of the {FAL_BUDGET:.0f} req/s budget"
    row.target = f"RSS ≤ {RSS_LIMIT_MB:.0f} MB; FAL ≤ budget per second; no Seq Scan on avatars"
    ok = rss <= RSS_LIMIT_MB and per_second <= FAL_BUDGET and plan_ok and seq.get("avatars") == 0
    row.judge(
        ok,
        f"RSS {rss:.0f} MB; max {per_second:.0f} req in a second; "
        + ("no Seq Scan on avatars" if plan_ok else "Seq Scan on avatars!"),
    )
    row.notes += [
        f"{len(made):,} trainings due at once; status RSS {rss_before:.0f} MB before, peak "
        f"{rss:.0f} MB; FAL status/result requests: max {per_second:.0f} in an aligned second, "
        f"{sliding:.0f} in a sliding one (budget {FAL_BUDGET:.0f}/s, poll batch {POLL_BATCH})",
        f"claim query plans use {', '.join(used) or 'no index'}; sequential scans during the "
        f"window: {seq} (index scans {idx})",
    ]
    return row
