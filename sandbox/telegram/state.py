"""The emulated world: users, chats, messages with edit history, updates, live feed."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.telegram.files import FileStore
from sandbox.telegram.rules import Fault, Limits, RateLimiter, Violations, bad_request

__all__ = [
    "CallbackRecord",
    "ChargeRecord",
    "InlineQueryRecord",
    "InvoiceRecord",
    "Json",
    "MessageRecord",
    "PreCheckoutRecord",
    "World",
]

Json = dict[str, Any]
DEFAULT_UPDATES = frozenset(
    [
        "message",
        "edited_message",
        "callback_query",
        "my_chat_member",
        "inline_query",
        "pre_checkout_query",
    ]
)
STARTING_STARS = 10_000


@dataclass(slots=True)
class MessageRecord:
    """A message's current state, its earlier versions and who sent it."""

    message: Json
    outgoing: bool
    history: list[Json] = field(default_factory=list)
    deleted: bool = False
    reply_keyboard: Json | None = None
    #: False when the bot sent it with `disable_notification` (no sound on the phone).
    notified: bool = True

    def as_json(self) -> Json:
        return {
            "message_id": self.message["message_id"],
            "outgoing": self.outgoing,
            "deleted": self.deleted,
            "notified": self.notified,
            "message": self.message,
            "history": self.history,
            "reply_keyboard": self.reply_keyboard,
        }


@dataclass(slots=True)
class CallbackRecord:
    """A pressed inline button and the bot's answer, if any."""

    query: Json
    chat_id: int
    pressed_at: float
    answer: Json | None = None

    def as_json(self) -> Json:
        return {
            "id": self.query["id"],
            "data": self.query.get("data"),
            "message_id": self.query["message"]["message_id"],
            "answer": self.answer,
        }


@dataclass(slots=True)
class InlineQueryRecord:
    """An inline query a user typed (`@bot words`) and the bot's answer, if any."""

    query: Json
    user_id: int
    asked_at: float
    answer: Json | None = None

    def as_json(self) -> Json:
        return {"id": self.query["id"], "query": self.query["query"], "answer": self.answer}


@dataclass(slots=True)
class InvoiceRecord:
    """An invoice the bot sent (sendInvoice) and the charge that paid it, if any."""

    chat_id: int
    message_id: int
    title: str
    description: str
    payload: str
    currency: str
    amount: int
    paying: bool = False
    charge_id: str | None = None

    def as_json(self) -> Json:
        return {
            "chat_id": self.chat_id,
            "message_id": self.message_id,
            "title": self.title,
            "payload": self.payload,
            "currency": self.currency,
            "total_amount": self.amount,
            "telegram_payment_charge_id": self.charge_id,
        }


@dataclass(slots=True)
class PreCheckoutRecord:
    """A pre_checkout_query sent to the bot and its answer; `expired` after the deadline."""

    query: Json
    user_id: int
    asked_at: float
    answer: Json | None = None
    expired: bool = False

    def as_json(self) -> Json:
        return {
            "id": self.query["id"],
            "user_id": self.user_id,
            "invoice_payload": self.query["invoice_payload"],
            "total_amount": self.query["total_amount"],
            "answer": self.answer,
            "expired": self.expired,
        }


@dataclass(slots=True)
class ChargeRecord:
    """A successful Telegram Stars payment (and its refund)."""

    charge_id: str
    user_id: int
    chat_id: int
    currency: str
    amount: int
    payload: str
    invoice_message_id: int
    message: Json
    paid_at: int
    refunded_at: int | None = None

    @property
    def refunded(self) -> bool:
        return self.refunded_at is not None

    def as_json(self) -> Json:
        return {
            "telegram_payment_charge_id": self.charge_id,
            "user_id": self.user_id,
            "chat_id": self.chat_id,
            "currency": self.currency,
            "total_amount": self.amount,
            "invoice_payload": self.payload,
            "invoice_message_id": self.invoice_message_id,
            "message_id": self.message["message_id"],
            "paid_at": self.paid_at,
            "refunded": self.refunded,
            "refunded_at": self.refunded_at,
        }


@dataclass(slots=True)
class World:
    """All emulator state; every change bumps `version` and wakes waiters."""

    limits: Limits = field(default_factory=Limits)
    files: FileStore = field(default_factory=FileStore)
    users: dict[int, Json] = field(default_factory=dict)
    chats: dict[int, Json] = field(default_factory=dict)
    blocked: set[int] = field(default_factory=set)
    messages: dict[int, dict[int, MessageRecord]] = field(default_factory=dict)
    callbacks: dict[str, CallbackRecord] = field(default_factory=dict)
    inline_queries: dict[str, InlineQueryRecord] = field(default_factory=dict)
    actions: dict[int, Json] = field(default_factory=dict)
    commands: dict[str, list[Json]] = field(default_factory=dict)
    invoices: dict[tuple[int, int], InvoiceRecord] = field(default_factory=dict)
    pre_checkouts: dict[str, PreCheckoutRecord] = field(default_factory=dict)
    charges: dict[str, ChargeRecord] = field(default_factory=dict)
    stars: dict[int, int] = field(default_factory=dict)
    updates: list[Json] = field(default_factory=list)
    allowed_updates: frozenset[str] = DEFAULT_UPDATES
    violations: Violations = field(default_factory=Violations)
    stats: Violations = field(default_factory=Violations)
    faults: list[Fault] = field(default_factory=list)
    version: int = 0
    _next_update: int = 1
    _next_message: dict[int, int] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _feeds: dict[int, set[asyncio.Queue[Json | None]]] = field(default_factory=dict)
    rate: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.rate = RateLimiter(self.limits)

    # -- change notification -------------------------------------------------------------
    def bump(self) -> None:
        self.version += 1
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def wait_change(self, within: float) -> bool:
        """Wait until anything changes; False after `within` seconds without change."""
        event = self._changed
        try:
            await asyncio.wait_for(event.wait(), within)
        except TimeoutError:
            return False
        return True

    async def wait_for(self, predicate: Callable[[], bool], within: float = 5.0) -> None:
        """Wait until `predicate()` holds; TimeoutError after `within` seconds."""
        deadline = time.monotonic() + within
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("condition not met in time")
            await self.wait_change(min(left, 0.5))

    # -- live feed -----------------------------------------------------------------------
    def subscribe(self, chat_id: int) -> asyncio.Queue[Json | None]:
        queue: asyncio.Queue[Json | None] = asyncio.Queue(maxsize=1000)
        self._feeds.setdefault(chat_id, set()).add(queue)
        return queue

    def unsubscribe(self, chat_id: int, queue: asyncio.Queue[Json | None]) -> None:
        self._feeds.get(chat_id, set()).discard(queue)

    def publish(self, chat_id: int, event: Json) -> None:
        for queue in list(self._feeds.get(chat_id, ())):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)
        self.bump()

    def close_feeds(self) -> None:
        for queues in self._feeds.values():
            for queue in queues:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)

    # -- users, chats, messages ----------------------------------------------------------
    def chat(self, chat_id: Any) -> Json:
        try:
            chat = self.chats.get(int(chat_id))
        except (TypeError, ValueError):
            chat = None
        if chat is None:
            raise bad_request("chat not found", "chat_not_found")
        return chat

    def next_message_id(self, chat_id: int) -> int:
        value = self._next_message.get(chat_id, 1)
        self._next_message[chat_id] = value + 1
        return value

    def add_message(
        self,
        message: Json,
        outgoing: bool,
        reply_keyboard: Json | None = None,
        notified: bool = True,
    ) -> MessageRecord:
        chat_id = message["chat"]["id"]
        record = MessageRecord(message, outgoing, reply_keyboard=reply_keyboard, notified=notified)
        self.messages.setdefault(chat_id, {})[message["message_id"]] = record
        self.publish(chat_id, {"type": "message", "entry": record.as_json()})
        return record

    def record(self, chat_id: int, message_id: Any, missing: str) -> MessageRecord:
        try:
            found = self.messages.get(chat_id, {}).get(int(message_id))
        except (TypeError, ValueError):
            found = None
        if found is None or found.deleted:
            raise bad_request(missing, "message_not_found")
        return found

    def below(self, chat_id: int, message_id: int) -> int:
        """How many messages (either side, not deleted) are below this one in the chat:
        0 for the newest. Message ids of a chat are one sequence across both sides."""
        box = self.messages.get(chat_id, {})
        return sum(1 for mid, r in box.items() if mid > message_id and not r.deleted)

    def edit(self, record: MessageRecord, new: Json) -> None:
        record.history.append(copy.deepcopy(record.message))
        record.message = new
        self.publish(new["chat"]["id"], {"type": "edit", "entry": record.as_json()})

    def transcript(self, chat_id: int) -> Json:
        records = sorted(
            self.messages.get(chat_id, {}).values(), key=lambda r: r.message["message_id"]
        )
        answers = [c.as_json() for c in self.callbacks.values() if c.chat_id == chat_id]
        return {
            "chat": self.chats.get(chat_id),
            "blocked": chat_id in self.blocked,
            "messages": [r.as_json() for r in records],
            "callback_answers": answers,
            "last_action": self.actions.get(chat_id),
        }

    # -- updates -------------------------------------------------------------------------
    def push_update(self, kind: str, payload: Json) -> int | None:
        """Queue an update for the bot; its update_id (None: not in allowed_updates)."""
        if kind not in self.allowed_updates:
            return None
        update_id = self._next_update
        self.updates.append({"update_id": update_id, kind: payload})
        self._next_update += 1
        self.bump()
        return update_id

    # -- Telegram Stars --------------------------------------------------------------------
    def star_balance(self, user_id: int) -> int:
        """A user's emulated Telegram Stars balance (STARTING_STARS until first used)."""
        return self.stars.setdefault(user_id, STARTING_STARS)

    def bot_star_balance(self) -> int:
        return sum(c.amount for c in self.charges.values() if not c.refunded)

    def confirm(self, offset: int) -> None:
        if offset < 0:
            self.updates = self.updates[offset:]
        else:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]

    def take_fault(self, method: str) -> Fault | None:
        for fault in self.faults:
            if fault.method.lower() == method.lower() and fault.count > 0:
                fault.count -= 1
                if fault.count == 0:
                    self.faults.remove(fault)
                return fault
        return None
