"""Training flows as a user lives them, and the bookkeeping of what became of each.

A flow is one Telegram user with one avatar ready to train (user, avatar and ten photos
stored as the bot stores them, to keep the suite fast), who opens the bot, goes to "My
avatars" → the avatar → "Start training" → "Quality" in the Telegram emulator, exactly like
a person, and then waits for the bot to say the avatar is ready (or that training failed). The
outcome of a scenario is counted from the user's side (the chat) and from the money side
(jobs in the FAL emulator per idempotency key).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import uuid
from collections import Counter
from dataclasses import dataclass
from functools import cache
from urllib.parse import parse_qs, urlsplit

import asyncpg
from nats.js import JetStreamContext
from PIL import Image

from contracts import FalPriority
from contracts.jetstream import CONSUMERS, OBJ_PHOTOS, STREAM_DLQ
from sandbox.fal import FalEmulator
from sandbox.telegram import TelegramEmulator
from services.bot.app.main_menu import MenuCb
from services.bot.avatars.callbacks import AvatarCb
from services.bot.training.callbacks import TrainingCb
from services.kit import credits

READY = "is ready!"
FAILED = "failed:"
PHOTOS = 10


@dataclass(frozen=True)
class Flow:
    uid: int
    avatar_id: uuid.UUID
    name: str
    trigger: str

    @property
    def key(self) -> str:
        return f"training:{self.avatar_id}:1"


@dataclass(frozen=True)
class Outcome:
    started: int
    completed: int
    lost: int
    duplicated: int
    failed_told: int = 0
    ready_messages_max: int = 0
    #: Flows whose ledger is not "charged once" (+ "refunded once" when the job failed).
    misbilled: int = 0

    def line(self, scenario: str, seed: int) -> str:
        return (
            f"scenario={scenario} seed={seed} flows started={self.started} "
            f"completed={self.completed} lost={self.lost} duplicated={self.duplicated} "
            f"misbilled={self.misbilled}"
        )


@cache
def photo(i: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (512, 512), (i * 23 % 255, 90, 200 - i * 9)).save(buffer, "JPEG")
    return buffer.getvalue()


_numbers = itertools.count()
#: What a training costs in the fault stack, and what each seeded user is given.
TRAINING_PRICE = 50
GRANT = 10 * TRAINING_PRICE


async def seed(db_url: str, js: JetStreamContext, tg: TelegramEmulator) -> Flow:
    """A user and an avatar in `ready` with its photos, written as the bot writes them."""
    index = next(_numbers)
    name = f"Flow{index}"
    user = await tg.create_user(name, language_code="en")
    uid = int(user["id"])
    trigger = f"tok{index}x{uuid.uuid4().hex[:6]}"
    store = await js.object_store(OBJ_PHOTOS.name)
    conn = await asyncpg.connect(db_url, server_settings={"role": "aisha_bot"})
    try:
        await conn.execute(
            "INSERT INTO users (id, first_name, language) VALUES ($1, $2, 'en')"
            " ON CONFLICT (id) DO NOTHING",
            uid,
            name,
        )
        async with conn.transaction():  # enough for every attempt a scenario may make
            await credits.post(
                conn, user_id=uid, kind=credits.Kind.ADMIN_GRANT, amount=GRANT,
                key=f"test-grant:{uid}",
            )  # fmt: skip
        avatar_id = await conn.fetchval(
            "INSERT INTO avatars (user_id, name, gender, training_type, trigger_word, status,"
            " photo_count) VALUES ($1, $2, 'female', 'style', $3, 'ready', $4) RETURNING id",
            uid,
            name,
            trigger,
            PHOTOS,
        )
        for i in range(PHOTOS):
            object_name = f"{avatar_id}/{i}.jpg"
            await store.put(object_name, photo(i))
            await conn.execute(
                "INSERT INTO photos (avatar_id, user_id, object_name, sha256, status)"
                " VALUES ($1, $2, $3, $4, 'accepted')",
                avatar_id,
                uid,
                object_name,
                f"sha-{i}",
            )
    finally:
        await conn.close()
    return Flow(uid, avatar_id, name, trigger)


def _button(tg: TelegramEmulator, uid: int, data: str) -> int | None:
    """The newest bot message in the chat that offers a button with `data`."""
    for record in reversed(list(tg.world.messages.get(uid, {}).values())):
        if not record.outgoing or record.deleted:
            continue
        rows = (record.message.get("reply_markup") or {}).get("inline_keyboard", [])
        if any(b.get("callback_data") == data for row in rows for b in row):
            return int(record.message["message_id"])
    return None


async def _press(tg: TelegramEmulator, uid: int, data: str, within: float) -> bool:
    """Wait for a bot message offering the button, then press it; False if none came."""
    try:
        await tg.wait_for(lambda: _button(tg, uid, data) is not None, within)
    except TimeoutError:
        return False
    message_id = _button(tg, uid, data)
    assert message_id is not None
    await tg.press_button(uid, message_id, data=data)
    return True


async def avatar_status(db_url: str, avatar_id: uuid.UUID) -> str:
    conn = await asyncpg.connect(db_url)
    try:
        return str(await conn.fetchval("SELECT status FROM avatars WHERE id = $1", avatar_id))
    finally:
        await conn.close()


async def start(db_url: str, tg: TelegramEmulator, flow: Flow, within: float = 60.0) -> None:
    """/start → My avatars → the avatar → Start training → Quality, as a user would — again from the
    top if the bot never reacted (it may have been killed mid-update), until the avatar
    left `ready`."""
    deadline = asyncio.get_running_loop().time() + within
    path = [
        MenuCb(action="avatars").pack(),
        AvatarCb(action="view", avatar_id=flow.avatar_id).pack(),
        TrainingCb(action="start", avatar_id=flow.avatar_id).pack(),
        TrainingCb.go(flow.avatar_id, FalPriority.QUALITY).pack(),
    ]
    while asyncio.get_running_loop().time() < deadline:
        await tg.send_command(flow.uid, "start")
        for data in path:
            if not await _press(tg, flow.uid, data, within=5.0):
                break
        for _ in range(40):
            if await avatar_status(db_url, flow.avatar_id) != "ready":
                return
            await asyncio.sleep(0.25)
    raise AssertionError(f"{flow.name}: training could not be started within {within}s")


async def retry_failed(
    db_url: str, tg: TelegramEmulator, flows: list[Flow], *, within: float
) -> int:
    """Until every flow completed (bounded): a user told "failed" presses "Try again" once.

    Returns how many did. That is the designed way out of an attempt whose outcome could
    not be reconciled; the new attempt has its own idempotency key.
    """
    deadline = asyncio.get_running_loop().time() + within
    retried: set[uuid.UUID] = set()
    while asyncio.get_running_loop().time() < deadline:
        states = [await avatar_status(db_url, f.avatar_id) for f in flows]
        if all(s == "completed" for s in states):
            break
        for flow, state in zip(flows, states, strict=True):
            if state == "error" and told(tg, flow, FAILED) and flow.avatar_id not in retried:
                data = TrainingCb(action="retry", avatar_id=flow.avatar_id).pack()
                if await _press(tg, flow.uid, data, within=5.0):
                    retried.add(flow.avatar_id)
        await asyncio.sleep(0.5)
    return len(retried)


def told(tg: TelegramEmulator, flow: Flow, fragment: str) -> int:
    """How many of the bot's messages in the user's chat show `fragment` now."""
    return sum(
        1
        for r in tg.world.messages.get(flow.uid, {}).values()
        if r.outgoing and not r.deleted and fragment in (r.message.get("text") or "")
    )


def fal_jobs_per_key(fal: FalEmulator) -> Counter[str]:
    keys: Counter[str] = Counter()
    for job in fal.jobs:
        query = parse_qs(urlsplit(job.webhook_url or "").query)
        for key in query.get("key", []):
            keys[key] += 1
    return keys


async def settle(
    db_url: str,
    tg: TelegramEmulator,
    fal: FalEmulator,
    flows: list[Flow],
    *,
    within: float,
    failing: frozenset[str] = frozenset(),
) -> Outcome:
    """Wait (bounded) until every flow ended and its user was told; count the outcome.

    Flows whose trigger is in `failing` are expected to end in a told failure.
    """
    deadline = asyncio.get_running_loop().time() + within

    async def finished(flow: Flow) -> bool:
        expected, fragment = ("error", FAILED) if flow.trigger in failing else ("completed", READY)
        return (
            await avatar_status(db_url, flow.avatar_id) == expected and told(tg, flow, fragment) > 0
        )

    done: set[uuid.UUID] = set()
    while asyncio.get_running_loop().time() < deadline and len(done) < len(flows):
        for flow in flows:
            if flow.avatar_id not in done and await finished(flow):
                done.add(flow.avatar_id)
        await asyncio.sleep(0.3)
    misbilled = [f for f in flows if not await billed_once(db_url, f, f.trigger in failing)]
    per_key = fal_jobs_per_key(fal)
    prefixes = tuple(f"training:{f.avatar_id}:" for f in flows)
    mine = [n for key, n in per_key.items() if key.startswith(prefixes)]
    return Outcome(
        started=len(flows),
        completed=len(done),
        lost=len(flows) - len(done),
        duplicated=sum(max(0, n - 1) for n in mine),
        failed_told=sum(1 for f in flows if f.trigger in failing and told(tg, f, FAILED)),
        ready_messages_max=max((told(tg, f, READY) for f in flows), default=0),
        misbilled=len(misbilled),
    )


async def billed_once(db_url: str, flow: Flow, failed: bool) -> bool:
    """One charge of the price for the attempt, and a refund of it iff the job failed."""
    conn = await asyncpg.connect(db_url)
    try:
        rows = await conn.fetch(
            "SELECT kind::text, amount FROM credit_entries WHERE user_id = $1"
            " AND kind IN ('training_charge', 'refund') ORDER BY seq",
            flow.uid,
        )
    finally:
        await conn.close()
    expected = [("training_charge", -TRAINING_PRICE)]
    if failed:
        expected.append(("refund", TRAINING_PRICE))
    return [(r["kind"], r["amount"]) for r in rows] == expected


async def drained(
    db_url: str, js: JetStreamContext, dead_letters: int = 0, within: float = 40.0
) -> None:
    """Nothing left behind: every outbox row published, every durable consumer caught up
    (acks included: a message held by a killed process comes back after `ack_wait`), and
    nothing dead-lettered beyond the `dead_letters` a scenario produced on purpose."""
    deadline = asyncio.get_running_loop().time() + within
    state: dict[str, int] = {}
    while True:
        conn = await asyncpg.connect(db_url)
        try:
            state = {
                "outbox": int(
                    await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                )
            }
        finally:
            await conn.close()
        for spec in CONSUMERS:
            info = await js.consumer_info(spec.stream, spec.durable)
            state[spec.durable] = (info.num_pending or 0) + (info.num_ack_pending or 0)
        dlq = (await js.stream_info(STREAM_DLQ.name)).state.messages
        state["unexpected_dead_letters"] = dlq - dead_letters
        if not any(state.values()):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"events left behind after {within}s: {state}")
        await asyncio.sleep(0.5)
