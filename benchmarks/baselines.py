"""Raw baselines, measured in the same run and with the same payloads as the scenarios.

Throughput comes from a saturating load; latency from the same operation made one at a
time (the unloaded floor). The JetStream and aiogram baselines live in `rawstack.py`.
"""

from __future__ import annotations

import uuid

from benchmarks import seed
from benchmarks.falhooks import Poster
from benchmarks.lab import Lab, ServiceProcess
from benchmarks.measure import Run, closed_loop, sequential
from benchmarks.report import Row
from sandbox.embedded import free_port
from sandbox.supervisor import base_env
from services.kit.db import create_pool


async def raw_http(lab: Lab) -> Row:
    """aiohttp handler returning 200 in its own process; POSTs of the webhook's body size."""
    sizes = lab.sizes
    row = Row("raw_http", "raw aiohttp POST → 200", "baseline", unit="req/s")
    port = free_port()
    server = ServiceProcess(
        "benchmarks.raw_server", base_env(), lab.log("raw_http"), args=[str(port)]
    )
    await server.start()
    try:
        await server.wait_ready(port, within=30.0)
        hooks = [lab.signer.completed(str(uuid.uuid4())) for _ in range(64)]
        async with Poster(f"http://127.0.0.1:{port}/fal/webhook", sizes.concurrency) as poster:

            async def post(i: int) -> None:
                await poster.post(hooks[i % len(hooks)])

            await closed_loop(post, 100, sizes.concurrency)  # warm-up
            for _ in range(sizes.baseline_repeats):
                run = await closed_loop(post, sizes.http_requests, sizes.concurrency)
                run.latencies_ms = await sequential(post, sizes.latency_samples)
                row.runs.append(run)
    finally:
        await server.stop()
    row.notes.append(
        f"body {len(hooks[0].body)} B with FAL's four signature headers, "
        f"{sizes.concurrency} in flight; latency one request at a time"
    )
    return row


_UPDATE = "UPDATE avatars SET last_status_check = now() WHERE fal_request_id = $1"


async def pg_update(lab: Lab) -> Row:
    """asyncpg single-row UPDATE by an indexed key, through a pool like the services' own."""
    sizes = lab.sizes
    row = Row("pg_update", "raw asyncpg UPDATE by key", "baseline", unit="upd/s")
    made = await seed.trainings(lab.pool, seed.new_user_ids(1000))
    keys = [t.request_id for t in made]
    pool = await create_pool(lab.db_url, "aisha_status")
    try:

        async def update(i: int) -> None:
            await pool.execute(_UPDATE, keys[i % len(keys)])

        await closed_loop(update, 200, sizes.concurrency)
        for _ in range(sizes.baseline_repeats):
            run: Run = await closed_loop(update, sizes.db_updates, sizes.concurrency)
            run.latencies_ms = await sequential(update, sizes.latency_samples)
            row.runs.append(run)
    finally:
        await pool.close()
        await seed.finish_all(lab.pool, made)
    row.notes.append(
        f"`{_UPDATE}` (index ix_avatars_fal_request_id), role aisha_status, pool of 10, "
        f"{sizes.concurrency} in flight"
    )
    return row
