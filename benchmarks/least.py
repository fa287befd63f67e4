"""The least code that can do a scenario's whole job: the floor the real services are held to.

Scenario 1's and 2's targets name raw parts (an empty aiohttp handler, an UPDATE, a publish)
or absolute times; these baselines do the scenario's complete job with nothing else, measured
exactly as the scenario is, so "ours ÷ least" says what our guarantees cost and the least's
own numbers say what a target asks of the machine.

* `least_ingest`: `least_server.py` in its own process (verify, one statement that records the
  delivery and applies it, one awaited publish, 200), measured as scenario 1.
* `least_completion`: the same server, and in this process (where scenario 2 hosts the bot) a
  pull consumer that takes each `TrainingCompleted`, reads the progress message with one
  `UPDATE … RETURNING` and edits it through aiogram — no claim, no FSM, no outbox, no
  transaction around the edit — measured as scenario 2 (100 completions/s, open loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import msgspec
from aiogram import Bot
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from benchmarks import botrun, completion, webhook_ingest
from benchmarks.falhooks import Poster, SignedWebhook
from benchmarks.lab import Lab
from benchmarks.measure import sequential
from benchmarks.report import Row
from contracts import TrainingCompleted
from contracts.jetstream import STREAM_TRAINING, ConsumerSpec
from sandbox.telegram import Limits, TelegramEmulator
from services.kit.broker import consumer_config

_SHOWN = (
    "UPDATE avatars SET status = 'completed', updated_at = now() WHERE id = $1 "
    "RETURNING progress_chat_id, progress_message_id"
)


async def least_ingest(lab: Lab) -> Row:
    sizes = lab.sizes
    row = Row("least_ingest", "least webhook ingest", "baseline", unit="hook/s")
    seen = webhook_ingest.Completions()
    sub = await lab.nc.subscribe(TrainingCompleted.subject, cb=seen.on_message)
    try:
        async with (
            webhook_ingest.least_server(lab) as url,
            Poster(url, sizes.concurrency) as poster,
        ):
            await webhook_ingest.sustained(lab, poster, seen, 50)  # warm-up
            for _ in range(sizes.baseline_repeats):
                run = await webhook_ingest.sustained(lab, poster, seen, sizes.ingest_webhooks)
                alone = await webhook_ingest.hooks(lab, sizes.latency_samples)

                async def post(i: int, alone: list[SignedWebhook] = alone) -> None:
                    await poster.post(alone[i])

                run.latencies_ms = await sequential(post, len(alone))
                row.runs.append(run)
    finally:
        await sub.unsubscribe()
        await lab.purge_training_events()
    row.notes.append(
        "aiohttp + timestamp and ED25519 check (`cryptography`) + one statement (INSERT of the "
        "body into `fal_webhooks`, `UPDATE avatars … RETURNING`; autocommit) + one awaited "
        "JetStream publish of the `TrainingCompleted` "
        f"event, nothing else, in its own process; {sizes.concurrency} in flight, first POST → "
        "last event on NATS, as scenario 1; latency = one POST at a time (the event is "
        "acknowledged before the answer)"
    )
    return row


class LeastBot:
    """Pull consumer → one UPDATE → `editMessageText` → ack, each message in its own task."""

    SPEC = ConsumerSpec(
        durable="bench-least-bot",
        stream=STREAM_TRAINING.name,
        filter_subjects=(TrainingCompleted.subject,),
    )

    def __init__(self, lab: Lab, bot: Bot):
        self.lab, self.bot = lab, bot
        self._task: asyncio.Task[None] | None = None
        self._handling: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> LeastBot:
        js = self.lab.js
        await js.add_consumer(self.SPEC.stream, consumer_config(self.SPEC))
        sub = await js.pull_subscribe_bind(durable=self.SPEC.durable, stream=self.SPEC.stream)
        self._task = asyncio.create_task(self._consume(sub))
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.gather(*self._handling, return_exceptions=True)
        await self.lab.js.delete_consumer(self.SPEC.stream, self.SPEC.durable)

    async def _consume(self, sub: JetStreamContext.PullSubscription) -> None:
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    for msg in await sub.fetch(16, timeout=1.0):
                        task = asyncio.create_task(self._handle(msg))
                        self._handling.add(task)
                        task.add_done_callback(self._handling.discard)
        finally:
            await sub.unsubscribe()

    async def _handle(self, msg: Msg) -> None:
        event = msgspec.json.decode(msg.data, type=TrainingCompleted)
        pool: asyncpg.Pool = self.lab.pool
        row = await pool.fetchrow(_SHOWN, uuid.UUID(event.avatar_id))
        if row is not None and row["progress_message_id"] is not None:
            await self.bot.edit_message_text(
                text="✅ Ready",
                chat_id=row["progress_chat_id"],
                message_id=row["progress_message_id"],
            )
        await msg.ack()


async def least_completion(lab: Lab) -> Row:
    sizes = lab.sizes
    row = Row("least_completion", "least completion → user", "baseline", unit="edit/s")
    await lab.purge_training_events()
    async with TelegramEmulator(limits=Limits(enabled=False)) as emu:
        bot = botrun.client(emu)
        try:
            async with (
                webhook_ingest.least_server(lab) as url,
                Poster(url, 64) as poster,
                LeastBot(lab, bot),
            ):
                await completion.once(lab, emu, poster, sizes.completion_rate, 20)  # warm-up
                count = int(sizes.completion_rate * sizes.completion_seconds)
                for _ in range(sizes.baseline_repeats):
                    row.runs.append(
                        await completion.once(lab, emu, poster, sizes.completion_rate, count)
                    )
        finally:
            await bot.session.close()
    await lab.purge_training_events()
    row.notes.append(
        f"`least_server.py` + a pull consumer in this process (one `UPDATE … RETURNING` of the "
        f"progress message, aiogram `editMessageText`, ack); open loop at "
        f"{sizes.completion_rate:.0f} completions/s as scenario 2, limits off; webhook → event "
        f"on NATS p50 {row.extra('event_p50_ms'):.1f} ms"
    )
    return row
