"""Telegram misbehaving while avatars train: flood control, 5xx, a user who blocked the bot.

The Telegram emulator answers the bot's calls with injected errors. Whatever it does,
each user who can still be reached ends with the final "ready" text; a user who blocked
the bot is marked inactive and left alone (no retry loop), and the training itself still
completes.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.faults.conftest import Product
from tests.faults.flows import (
    READY,
    Outcome,
    avatar_status,
    drained,
    fal_jobs_per_key,
    seed,
    settle,
    start,
    told,
)

pytestmark = [pytest.mark.faults, pytest.mark.asyncio(loop_scope="session")]


async def fal_status(db_url: str, flow_avatar: object) -> str | None:
    conn = await asyncpg.connect(db_url)
    try:
        value = await conn.fetchval("SELECT fal_status FROM avatars WHERE id = $1", flow_avatar)
    finally:
        await conn.close()
    return None if value is None else str(value)


@pytest.mark.timeout(120)
async def test_flood_control_and_server_errors_during_progress(shared: Product) -> None:
    p = shared
    exits_before = list(p.services.exits)
    p.fal.configure(training_seconds=4.0)  # long enough for several progress edits
    try:
        flows = [await seed(p.db_url, p.js, p.telegram) for _ in range(3)]
        # The replies to /start fail first: the users send it again, as people do.
        await p.telegram.inject_fault("sendMessage", status=502, count=2)
        await asyncio.gather(*(start(p.db_url, p.telegram, f) for f in flows))
        await p.telegram.inject_fault("editMessageText", status=429, count=6, retry_after=1)
        await p.telegram.inject_fault("editMessageText", status=500, count=3)
        await p.telegram.inject_fault("editMessageText", status=502, count=2)
        outcome = await settle(p.db_url, p.telegram, p.fal, flows, within=60)
    finally:
        p.fal.configure(training_seconds=2.0)
    print(outcome.line("telegram_429_5xx", 0))
    assert [f for f in p.telegram.world.faults if f.count > 0] == []  # every fault was hit
    assert outcome.lost == 0
    assert outcome.duplicated == 0
    assert outcome.misbilled == 0
    assert outcome.ready_messages_max == 1
    assert p.services.exits == exits_before
    await drained(p.db_url, p.js, p.dead_letters)


@pytest.mark.timeout(120)
async def test_user_who_blocked_the_bot_is_marked_inactive_and_left_alone(
    shared: Product,
) -> None:
    p = shared
    exits_before = list(p.services.exits)
    flow = await seed(p.db_url, p.js, p.telegram)
    await start(p.db_url, p.telegram, flow)
    await p.telegram.set_blocked(flow.uid, True)
    blocked_before = p.telegram.world.violations.get("blocked_user", 0)
    deadline = asyncio.get_running_loop().time() + 45
    while await avatar_status(p.db_url, flow.avatar_id) != "completed":
        assert asyncio.get_running_loop().time() < deadline, "training never completed"
        await asyncio.sleep(0.3)
    await asyncio.sleep(2.0)  # room for a retry loop to show itself
    conn = await asyncpg.connect(p.db_url)
    try:
        active = await conn.fetchval("SELECT is_active FROM users WHERE id = $1", flow.uid)
    finally:
        await conn.close()
    refused = p.telegram.world.violations.get("blocked_user", 0) - blocked_before
    jobs = fal_jobs_per_key(p.fal)[flow.key]
    outcome = Outcome(started=1, completed=1, lost=0, duplicated=max(0, jobs - 1))
    print(outcome.line("telegram_blocked_user", 0))
    assert jobs == 1
    assert active is False
    assert refused <= 2, f"{refused} calls refused with 403: the bot keeps retrying"
    assert told(p.telegram, flow, READY) == 0
    assert p.services.exits == exits_before
    await drained(p.db_url, p.js, p.dead_letters)


@pytest.mark.timeout(150)
async def test_bot_killed_while_telegram_holds_back_the_final_message(shared: Product) -> None:
    """The avatar is ready but Telegram keeps answering 429 when the bot dies: after the
    restart the user is still told (the notification is not lost with the process)."""
    p = shared
    flow = await seed(p.db_url, p.js, p.telegram)
    await start(p.db_url, p.telegram, flow)
    await p.telegram.inject_fault("editMessageText", status=429, count=1000, retry_after=3)
    await p.telegram.inject_fault("sendMessage", status=429, count=1000, retry_after=3)
    deadline = asyncio.get_running_loop().time() + 45
    while await fal_status(p.db_url, flow.avatar_id) != "COMPLETED":
        assert asyncio.get_running_loop().time() < deadline, "training never completed"
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.5)  # the bot has the completion and waits on Telegram
    p.services.kill("bot")
    await asyncio.sleep(0.5)
    p.telegram.world.faults.clear()
    outcome = await settle(p.db_url, p.telegram, p.fal, [flow], within=60)
    print(outcome.line("telegram_bot_killed_before_final_edit", 0))
    assert p.services.exits[-1] == ("bot", -9)
    assert outcome.lost == 0
    assert outcome.ready_messages_max == 1
    await drained(p.db_url, p.js, p.dead_letters)
