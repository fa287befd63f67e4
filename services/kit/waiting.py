"""The one way a periodic task waits: until its next round is due or the service stops."""

from __future__ import annotations

import asyncio
import contextlib


async def pause(stop: asyncio.Event, seconds: float | None) -> None:
    """Return after `seconds` (None: only when stopped) or as soon as `stop` is set, so a
    task sleeping between rounds never holds up shutdown."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
