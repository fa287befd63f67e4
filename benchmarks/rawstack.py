"""Raw baselines of the messaging stack: JetStream publish and consume, aiogram no-op dispatch.

JetStream uses a stream of its own with the configuration of ours (file storage, the same
consumer settings) and the payload of our events (a `TrainingCompleted`). aiogram
dispatches to a handler that does nothing, from the Telegram emulator's getUpdates long
poll (the path the bot uses) and through `Dispatcher.feed_update` (dispatch alone). The
least bot (`aiogram_dialogue`) holds scenario 3's conversation: the same users, updates and
waiting, each update answered with the Bot API calls ours makes and nothing else.
"""

from __future__ import annotations

import asyncio
import uuid

from aiogram import Dispatcher
from aiogram.types import Message, Update
from nats.js import JetStreamContext

from benchmarks import bot_updates, botrun
from benchmarks.lab import Lab
from benchmarks.measure import BenchError, Run, closed_loop, now, sequential
from benchmarks.report import Row
from benchmarks.seed import new_user_ids
from contracts import TrainingCompleted, encode, new_event_id, utcnow
from contracts.jetstream import ConsumerSpec, StreamSpec
from sandbox.telegram import TelegramEmulator
from services.kit.broker import consumer_config, ensure_stream

BENCH_STREAM = StreamSpec(name="AISHA_BENCH", subjects=("bench.>",))


def sample_event() -> bytes:
    """A completed-training event as the status service publishes it."""
    request_id = str(uuid.uuid4())
    base = f"https://v3.fal.media/files/bench/{request_id}"
    event = TrainingCompleted(
        event_id=new_event_id(),
        occurred_at=utcnow(),
        avatar_id=str(uuid.uuid4()),
        user_id=500_000_000_123,
        attempt=1,
        request_id=request_id,
        lora_url=f"{base}/pytorch_lora_weights.safetensors",
        config_url=f"{base}/config.json",
    )
    return encode(event)


async def js_publish(lab: Lab) -> Row:
    sizes, js = lab.sizes, lab.js
    row = Row("js_publish", "raw JetStream publish", "baseline", unit="msg/s")
    await ensure_stream(js, BENCH_STREAM)
    payload = sample_event()

    async def publish(_: int) -> None:
        await js.publish("bench.publish", payload, headers={"Nats-Msg-Id": str(uuid.uuid4())})

    await closed_loop(publish, 200, sizes.concurrency)
    for _ in range(sizes.baseline_repeats):
        run = await closed_loop(publish, sizes.js_messages, sizes.concurrency)
        serial = await closed_loop(publish, sizes.latency_samples, 1)
        run.latencies_ms, run.extra["sequential_rate"] = serial.latencies_ms, serial.rate
        row.runs.append(run)
    await js.purge_stream(BENCH_STREAM.name)
    row.notes.append(
        f"{len(payload)} B with Nats-Msg-Id, {sizes.concurrency} awaited publishes in flight; "
        f"one at a time: {row.extra('sequential_rate'):.0f} msg/s"
    )
    return row


async def js_consume(lab: Lab) -> Row:
    sizes, js = lab.sizes, lab.js
    row = Row("js_consume", "raw JetStream pull + ack", "baseline", unit="msg/s")
    await ensure_stream(js, BENCH_STREAM)
    payload = sample_event()
    spec = ConsumerSpec(durable="bench-raw", stream=BENCH_STREAM.name, filter_subjects=("bench.c",))
    for _ in range(sizes.baseline_repeats):
        await js.purge_stream(BENCH_STREAM.name)
        for start in range(0, sizes.js_messages, 200):
            count = min(200, sizes.js_messages - start)
            await asyncio.gather(*(js.publish("bench.c", payload) for _ in range(count)))
        await js.add_consumer(BENCH_STREAM.name, consumer_config(spec))
        sub = await js.pull_subscribe_bind(durable=spec.durable, stream=spec.stream)
        try:
            started, got = now(), 0
            while got < sizes.js_messages:
                msgs = await sub.fetch(min(100, sizes.js_messages - got), timeout=5.0)
                for msg in msgs:
                    await msg.ack()
                got += len(msgs)
            run = Run(got, now() - started)

            async def round_trip(_: int, sub: JetStreamContext.PullSubscription = sub) -> None:
                await js.publish("bench.c", payload)
                (msg,) = await sub.fetch(1, timeout=5.0)
                await msg.ack()

            run.latencies_ms = await sequential(round_trip, sizes.latency_samples)
            row.runs.append(run)
        finally:
            await sub.unsubscribe()
            await js.delete_consumer(spec.stream, spec.durable)
    await js.purge_stream(BENCH_STREAM.name)
    row.notes.append(
        "backlog drained with fetch(100) + ack; latency = publish → fetch(1) → ack, one at a time"
    )
    return row


class _Hits:
    def __init__(self) -> None:
        self.count = 0
        self.target = 0
        self.done = asyncio.Event()

    def expect(self, count: int) -> None:
        self.count, self.target = 0, count
        self.done.clear()

    async def handler(self, _: Message) -> None:
        self.count += 1
        if self.count >= self.target:
            self.done.set()

    async def wait(self, within: float) -> None:
        try:
            await asyncio.wait_for(self.done.wait(), within)
        except TimeoutError:
            raise BenchError(f"no-op handler saw {self.count}/{self.target} updates") from None


async def aiogram_polling(lab: Lab) -> Row:
    sizes = lab.sizes
    row = Row("aiogram_polling", "aiogram no-op, getUpdates", "baseline", unit="upd/s")
    hits = _Hits()
    dp = Dispatcher()
    dp.message.register(hits.handler)
    users = new_user_ids(sizes.conversation_users)
    async with botrun.polling_dispatcher(dp, users) as emu:

        async def burst(count: int) -> Run:
            hits.expect(count)
            started = now()
            for i in range(count):
                emu.users.send_text(users[i % len(users)], f"hello {i}")
            await hits.wait(60.0)
            return Run(count, now() - started)

        async def one(i: int) -> None:
            await burst(1)

        await burst(50)
        for _ in range(sizes.baseline_repeats):
            run = await burst(sizes.polling_updates)
            run.latencies_ms = await sequential(one, sizes.latency_samples)
            row.runs.append(run)
    row.notes.append(
        f"backlog of text updates from {len(users)} users; latency = one update at a time"
    )
    return row


async def aiogram_feed(lab: Lab) -> Row:
    sizes = lab.sizes
    row = Row("aiogram_feed", "aiogram no-op, feed_update", "baseline", unit="upd/s")
    hits = _Hits()
    dp = Dispatcher()
    dp.message.register(hits.handler)
    async with TelegramEmulator() as emu:
        bot = botrun.client(emu)
        uid = new_user_ids(1)[0]
        user = {"id": uid, "is_bot": False, "first_name": "Bench"}
        chat = {"id": uid, "type": "private", "first_name": "Bench"}
        message = {"date": 0, "chat": chat, "from": user, "text": "hi"}
        updates = [
            Update.model_validate(
                {"update_id": i, "message": {"message_id": i, **message}}, context={"bot": bot}
            )
            for i in range(sizes.feed_updates)
        ]

        async def feed(i: int) -> None:
            await dp.feed_update(bot, updates[i])

        hits.expect(10**9)
        await closed_loop(feed, 100, 1)
        for _ in range(sizes.baseline_repeats):
            row.runs.append(await closed_loop(feed, sizes.feed_updates, 1))
        await bot.session.close()
    row.notes.append("the same text update dispatched in a loop, no network")
    return row


async def aiogram_dialogue(lab: Lab) -> Row:
    """Scenario 3's dialogue against `bot_updates.least_bot` (the same Bot API calls as ours,
    nothing else); scenario 3 also runs it beside its own runs, for paired ratios."""
    sizes = lab.sizes
    row = Row("aiogram_dialogue", "least bot, same dialogue", "baseline", unit="upd/s")
    users = new_user_ids(sizes.conversation_users)
    async with bot_updates.least_bot(users) as emu:
        await bot_updates.dialogues(emu, users[:4], 1)  # warm-up
        for _ in range(sizes.baseline_repeats):
            row.runs.append(await bot_updates.dialogues(emu, users, sizes.conversation_rounds))
    row.notes.append(
        f"scenario 3's {len(users)} users and updates ({bot_updates.STEPS} per dialogue), each "
        "answered with the Bot API calls ours makes (a text: sendMessage with the buttons; a "
        "press: editMessageText + answerCallbackQuery), nothing else"
    )
    return row
