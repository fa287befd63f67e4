"""The status service in this process with its real routes, pool and verifier (the hostile
webhook modules share it), and the configuration pieces they need."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from sandbox.embedded import free_port
from services.kit.config import CommonConfig
from services.status import bootstrap as status_service
from services.status.config import StatusConfig

MAX_BYTES = 4096


def common(service: str, db: str, nats_url: str, port: int) -> CommonConfig:
    return CommonConfig(
        service=service,
        database_url=db,
        nats_url=nats_url,
        http_host="127.0.0.1",
        http_port=port,
        log_format="text",
        log_level="INFO",
        shutdown_grace_seconds=2.0,
    )


@contextlib.asynccontextmanager
async def running_status(
    db: str, nats_url: str, jwks_url: str, **overrides: Any
) -> AsyncIterator[str]:
    """The status service in this process, ready; yields its webhook URL. `overrides`
    replace `StatusConfig` fields (a short read timeout, say)."""
    port = free_port()
    config = StatusConfig(
        common=common("status", db, nats_url, port),
        fal_key="status-test-id:status-test-secret",
        jwks_url=jwks_url,
        webhook_tolerance_seconds=300,
        webhook_max_bytes=MAX_BYTES,
        poll_interval_seconds=60.0,
        poll_batch=10,
        fal_requests_per_second=1.0,
    )
    config = dataclasses.replace(config, **overrides)
    stop = asyncio.Event()
    task = asyncio.create_task(status_service.run(config, stop))
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"http://127.0.0.1:{port}/readyz") as ready:
                        if ready.status == 200:
                            break
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}/fal/webhook"
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def metric(url: str, outcome: str, family: str = "aisha_status_webhooks_total") -> float:
    """`family{outcome}` as the service's /metrics shows it; `outcome` holding an `=` is the
    whole label set, names sorted as the exposition prints them (`a="x",b="y"`)."""
    metrics_url = url.rsplit("/fal/", 1)[0] + "/metrics"
    async with aiohttp.ClientSession() as session, session.get(metrics_url) as response:
        text = await response.text()
    labels = outcome if "=" in outcome else f'outcome="{outcome}"'
    sample = f"{family}{{{labels}}} "
    for line in text.splitlines():
        if line.startswith(sample):
            return float(line[len(sample) :])
    return 0.0
