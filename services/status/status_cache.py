"""The training status cache in NATS KV: what the bot shows without a database query.

Every change the status service applies to a training is written here after its commit,
keyed by avatar id. The write does not wait for JetStream's ack: the message is on its
way, in call order, when `write_status` returns (a waited-for `KeyValue.put` costs a whole
request/response on every finish); a failure or a missing ack is logged, never raised,
because the cache is an optimisation and the database stays the truth.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import datetime
from typing import Any

import msgspec
from nats.js.kv import KeyValue

from contracts import utcnow

log = logging.getLogger(__name__)
#: How long a status cache write may wait for its ack before it is given up (and logged).
_CACHE_ACK_SECONDS = 5.0


class StatusCache(msgspec.Struct, frozen=True):
    """What the KV cache holds per avatar: enough to show status without a DB query."""

    avatar_id: str
    fal_status: str
    progress: int
    queue_position: int | None
    updated_at: datetime


async def write_status(
    cache: KeyValue, avatar_id: str, fal_status: str, progress: int, queue_position: int | None
) -> None:
    """Publish the avatar's status to the cache bucket without waiting for the ack."""
    value = msgspec.json.encode(
        StatusCache(avatar_id, fal_status, progress, queue_position, utcnow())
    )
    try:
        # KeyValue.put is this publish, awaited: same subject, same bucket.
        ack = await cache._js.publish_async(f"{cache._pre}{avatar_id}", value, wait_stall=0.5)
    except Exception as exc:  # noqa: BLE001 - the cache is an optimisation, never a failure
        log.warning("status cache write failed: %s", exc)
        return
    timer = asyncio.get_running_loop().call_later(_CACHE_ACK_SECONDS, ack.cancel)
    ack.add_done_callback(functools.partial(_cache_written, timer))


def _cache_written(timer: asyncio.TimerHandle, ack: asyncio.Future[Any]) -> None:
    timer.cancel()
    if ack.cancelled():
        log.warning("status cache write failed: no ack from JetStream")
    elif (exc := ack.exception()) is not None:
        log.warning("status cache write failed: %s", exc)
