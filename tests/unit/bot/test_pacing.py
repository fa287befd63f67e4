"""What reaches a phone, at the sender: silent chatter, progress re-sent when buried, one
edit of a message a second, and one pace shared by the sender and handlers' own replies."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from aiogram import Bot
from aiogram.methods import DeleteMessage, EditMessageText, SendMessage
from aiogram.types import Chat, Message

from services.bot.app.pacing import ChatPositions, PaceMiddleware, Pacer
from services.bot.app.sender import EDIT_INTERVAL, Sender
from tests.unit.bot.test_sender import FakeSession, make

CHAT = 42


def sends(session: FakeSession) -> list[SendMessage]:
    return [m for m in session.calls if isinstance(m, SendMessage)]


async def test_chatter_is_silent_and_an_outcome_is_not() -> None:
    session = FakeSession()
    sender = make(session)
    await sender.send(CHAT, "3 of 10 photos", silent=True)
    await sender.send(CHAT, "Avatar is ready")
    silent, outcome = sends(session)
    assert silent.disable_notification is True
    assert not outcome.disable_notification


async def test_progress_is_edited_while_recent_and_re_sent_when_buried() -> None:
    session = FakeSession()
    sender = make(session)
    sender.positions.seen(CHAT, 10)
    assert await sender.show_progress(CHAT, 8, "40%") == 8  # two messages below: in sight
    assert [type(m) for m in session.calls] == [EditMessageText]
    moved = await sender.show_progress(CHAT, 5, "50%")  # five below: out of sight
    assert moved is not None
    assert moved != 5
    resent, deleted = session.calls[1:]
    assert isinstance(resent, SendMessage)
    assert resent.text == "50%"
    assert resent.disable_notification is True  # progress is chatter
    assert isinstance(deleted, DeleteMessage)
    assert deleted.message_id == 5


def test_positions_follow_both_sides_of_the_chat() -> None:
    positions = ChatPositions(recent=3)
    chat = Chat(id=CHAT, type="private")
    album = [Message(message_id=i, date=datetime.now(UTC), chat=chat) for i in (4, 5, 6)]
    positions.seen_result(album)  # what sendMediaGroup returns
    assert not positions.buried(CHAT, 3)
    positions.seen(CHAT, 9)  # the user wrote (an update's message id)
    assert positions.buried(CHAT, 5)
    assert not positions.buried(CHAT, 6)
    assert not positions.buried(CHAT + 1, 1)  # an unknown chat buries nothing


async def test_one_message_is_edited_at_most_once_per_interval_last_state_wins() -> None:
    session = FakeSession()
    sender = make(session)
    stamps: list[float] = []
    first = sender.enqueue_edit(CHAT, 7, "10%")
    await first
    stamps.append(time.monotonic())
    pending = [sender.enqueue_edit(CHAT, 7, f"{p}%") for p in (20, 30, 40)]
    for future in pending:
        assert await future
    stamps.append(time.monotonic())
    texts = [m.text for m in session.calls if isinstance(m, EditMessageText)]
    assert texts == ["10%", "40%"]  # three later states, one request: the newest
    assert stamps[1] - stamps[0] >= EDIT_INTERVAL * 0.9


async def test_handlers_replies_and_the_sender_share_one_chat_pace() -> None:
    """A handler's own reply waits for the chat's token the sender also draws from; the
    sender's own calls take one token, not two."""
    session = FakeSession()
    pacer = Pacer(global_rate=1000.0, chat_rate=5.0, chat_burst=2)  # 1 token held back
    positions = ChatPositions()
    session.middleware(PaceMiddleware(pacer, positions))
    bot = Bot("123456:test-token-abcdefgh", session=session)
    sender = Sender(bot, pacer=pacer, positions=positions)

    started = time.monotonic()
    for i in range(3):
        await sender.send(CHAT, f"sender {i}")
    by_sender = time.monotonic() - started
    assert 0.3 <= by_sender < 0.6  # 1 at once, then 2 at 5/s: one token a call

    started = time.monotonic()
    await bot.send_message(CHAT, "a handler's reply")
    assert time.monotonic() - started >= 0.15  # the sender had used the chat's tokens
    # every result moved the chat's newest id (4): only the first is more than 3 above it
    assert [positions.buried(CHAT, i) for i in (0, 1)] == [True, False]
