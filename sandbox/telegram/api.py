"""The Bot API method registry and helpers shared by the method modules."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sandbox.telegram.rules import ApiError, check_caption, check_reply_markup, format_text
from sandbox.telegram.state import Json, World

if TYPE_CHECKING:
    from sandbox.telegram.delivery import Delivery
    from sandbox.telegram.params import Params

__all__ = ["METHODS", "Call", "Handler", "method"]

Fetch = Callable[[str], Awaitable[tuple[bytes, str | None]]]


@dataclass(slots=True)
class Call:
    """One Bot API call: the world, its parameters and the calling bot."""

    world: World
    params: Params
    bot: Json
    fetch: Fetch
    delivery: Delivery

    def target_chat(self) -> Json:
        """The chat named by chat_id, refusing blocked users."""
        chat = self.world.chat(self.params.required("chat_id"))
        if chat["id"] in self.world.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user", "blocked_user")
        return chat

    def new_message(self, chat: Json) -> Json:
        """A message skeleton from the bot (id assigned later by `store`)."""
        message: Json = {"message_id": 0, "from": self.bot, "chat": chat, "date": int(time.time())}
        reply_to = self.params.get_json("reply_parameters") or {}
        reply_id = reply_to.get("message_id") if isinstance(reply_to, dict) else None
        reply_id = reply_id or self.params.get_int("reply_to_message_id")
        original = self.world.messages.get(chat["id"], {}).get(int(reply_id or 0))
        if original is not None:
            parent = {k: v for k, v in original.message.items() if k != "reply_to_message"}
            message["reply_to_message"] = parent
        return message

    def inline_markup(self) -> Json | None:
        """The validated reply_markup; only inline keyboards belong to the message."""
        markup = self.params.get_json("reply_markup")
        check_reply_markup(markup)
        return markup if isinstance(markup, dict) and "inline_keyboard" in markup else None

    def reply_keyboard(self) -> Json | None:
        markup = self.params.get_json("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" not in markup:
            return markup
        return None

    def caption_into(self, message: Json, caption: Any, parse_mode: Any) -> None:
        if caption in (None, ""):
            return
        parsed = format_text(str(caption), parse_mode)
        check_caption(parsed)
        message["caption"] = parsed.text
        if parsed.entities:
            message["caption_entities"] = parsed.entities

    def store(self, message: Json, count_rate: bool = True) -> Json:
        """Spend a rate-limit token, number the message and add it to the transcript."""
        chat_id = message["chat"]["id"]
        if count_rate:
            self.world.rate.acquire(chat_id)
        message["message_id"] = self.world.next_message_id(chat_id)
        self.world.add_message(
            message,
            outgoing=True,
            reply_keyboard=self.reply_keyboard(),
            notified=not self.params.get_bool("disable_notification"),
        )
        return message


Handler = Callable[[Call], Awaitable[Any]]
METHODS: dict[str, Handler] = {}


def method(*names: str) -> Callable[[Handler], Handler]:
    """Register a handler under Bot API method names (matched case-insensitively)."""

    def register(handler: Handler) -> Handler:
        for name in names:
            METHODS[name.lower()] = handler
        return handler

    return register
