"""Scenario 3: texts and button presses through the bot's real handlers, FSM and database.

Users talk to the bot (in this process, long-polling the emulator like the no-op baseline)
all at once; each goes through the create-avatar dialogue: /start, "create", a name, the
portrait info card, "pick", a gender (which writes the avatar). Each step waits for the
bot's answer (its message, or its callback answer), as a person would. Throughput = updates
handled per second; latency = update pushed → the bot's answer stored by the emulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections.abc import AsyncIterator

from aiogram import Dispatcher
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from benchmarks import botrun
from benchmarks.lab import Lab
from benchmarks.measure import BenchError, Run, now
from benchmarks.report import Row
from benchmarks.seed import new_user_ids
from contracts import TrainingType
from sandbox.telegram import Limits, TelegramEmulator
from sandbox.telegram.state import Json
from services.bot.app.main_menu import MenuCb
from services.bot.app.models import Gender
from services.bot.avatars.callbacks import GenderCb, TrainingTypeCb

NEEDS = ("aiogram_polling", "aiogram_feed", "aiogram_dialogue")
TARGET_RATIO = 0.5
STEPS = 6
#: The callback data the dialogue presses, in order (the least bot offers them all).
PRESSED = (
    MenuCb(action="create").pack(),
    TrainingTypeCb(action="info", value=TrainingType.PORTRAIT).pack(),
    TrainingTypeCb(action="pick", value=TrainingType.PORTRAIT).pack(),
    GenderCb(value=Gender.FEMALE).pack(),
)


class Chat:
    """One user's side of the conversation, read from the emulator's live feed."""

    def __init__(self, emu: TelegramEmulator, user_id: int, latencies: list[float]):
        self.emu, self.user_id, self.latencies = emu, user_id, latencies
        self.queue = emu.world.subscribe(user_id)

    def close(self) -> None:
        self.emu.world.unsubscribe(self.user_id, self.queue)

    async def _answer(self, kind: str, started: float) -> Json:
        async with asyncio.timeout(30.0):
            while True:
                event = await self.queue.get()
                if event is None:
                    raise BenchError("the emulator stopped")
                if event["type"] == kind and event.get("entry", {}).get("outgoing", True):
                    self.latencies.append((now() - started) * 1000)
                    return event

    async def say(self, text: str) -> int:
        """Send a text; the id of the bot's reply."""
        started = now()
        self.emu.users.send_text(self.user_id, text)
        event = await self._answer("message", started)
        return int(event["entry"]["message_id"])

    async def press(self, message_id: int, data: str) -> None:
        started = now()
        self.emu.users.press_button(self.user_id, message_id, data)
        await self._answer("callback_answer", started)

    async def create_avatar(self) -> None:
        create, info, pick, female = PRESSED
        menu = await self.say("/start")
        await self.press(menu, create)
        card = await self.say("Anna")
        await self.press(card, info)
        await self.press(card, pick)
        await self.press(card, female)


async def dialogues(emu: TelegramEmulator, users: list[int], rounds: int) -> Run:
    latencies: list[float] = []
    chats = [Chat(emu, uid, latencies) for uid in users]

    async def talk(chat: Chat) -> None:
        for _ in range(rounds):
            await chat.create_avatar()

    try:
        started = now()
        await asyncio.gather(*(talk(c) for c in chats))
        return Run(len(users) * rounds * STEPS, now() - started, latencies)
    finally:
        for chat in chats:
            chat.close()


@contextlib.asynccontextmanager
async def least_bot(users: list[int]) -> AsyncIterator[TelegramEmulator]:
    """The least bot that answers the dialogue as ours does, with the same Bot API calls and
    nothing else (no FSM, no database, no middlewares): a text gets one message carrying the
    buttons the dialogue presses; a press edits that message (the next screen) and answers
    its callback. Long-polls an emulator of its own, which it yields."""
    buttons = [[InlineKeyboardButton(text=str(i), callback_data=d)] for i, d in enumerate(PRESSED)]
    keyboard = InlineKeyboardMarkup(inline_keyboard=buttons)

    async def on_text(message: Message) -> None:
        await message.answer("ok", reply_markup=keyboard)

    async def on_press(query: CallbackQuery) -> None:
        if isinstance(query.message, Message):
            await query.message.edit_text(f"after {query.data}", reply_markup=keyboard)
        await query.answer()

    dp = Dispatcher()
    dp.message.register(on_text)
    dp.callback_query.register(on_press)
    async with botrun.polling_dispatcher(dp, users, "Anna") as emu:
        yield emu


async def run(lab: Lab, baselines: dict[str, Row]) -> Row:
    """Ours and the least bot take turns (the least's run just before each of ours), so each
    ratio compares two runs a few seconds apart under the same load on the machine."""
    sizes = lab.sizes
    row = Row("bot_updates", "3. bot updates", "scenario", unit="upd/s")
    users = new_user_ids(sizes.conversation_users)
    ratios: list[float] = []
    async with TelegramEmulator(limits=Limits(enabled=False)) as emu, least_bot(users) as least:
        for uid in users:
            emu.users.create_user("Anna", user_id=uid)
        # The emulator's flood limits are off here (CPU per update is measured), so is the
        # bot's pace: every reply of a handler now waits for its chat's token.
        unpaced = {"send_rate_global": 1e6, "send_rate_chat": 1e6, "send_burst_chat": 10**6}
        async with botrun.RunningBot(botrun.bot_config(lab, emu, **unpaced), emu):
            await dialogues(least, users[:4], 1)  # warm-up
            await dialogues(emu, users[:4], 1)
            for _ in range(sizes.repeats):
                floor = await dialogues(least, users, sizes.conversation_rounds)
                ours = await dialogues(emu, users, sizes.conversation_rounds)
                row.runs.append(ours)
                ratios.append(ours.rate / floor.rate)
        violations = await emu.violations()
    polling, feed = baselines["aiogram_polling"], baselines["aiogram_feed"]
    least_rate = baselines["aiogram_dialogue"].rate
    row.ratio = statistics.median(ratios)
    row.ratio_of = "vs the least bot, same dialogue (paired runs)"
    row.target = f"≥ {TARGET_RATIO:.0%} of the least bot's rate, same dialogue"
    row.judge(
        row.ratio >= TARGET_RATIO,
        f"{row.ratio:.2f}× (pairs {min(ratios):.2f}–{max(ratios):.2f}). As filed (≥ "
        f"{TARGET_RATIO:.0%} of the aiogram no-op, getUpdates): {row.rate / polling.rate:.2f}×, "
        f"the least bot itself {least_rate / polling.rate:.2f}× ({row.rate / feed.rate:.3f}× "
        "feed_update)",
    )
    row.notes.append(
        f"{len(users)} users at once, {sizes.conversation_rounds} create-avatar dialogue(s) each "
        f"({STEPS} updates: 2 texts, 4 callbacks; user upsert, FSM on NATS KV, avatar INSERT); "
        f"emulator rate limits off; Bot API rule violations: {violations or 'none'}"
    )
    return row
