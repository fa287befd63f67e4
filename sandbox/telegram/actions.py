"""What a user does: write, send photos/albums/documents, press buttons, block the bot."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from sandbox.telegram.state import CallbackRecord, Json, World

__all__ = ["ActionError", "UserActions"]

_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]+)?")
_ids = itertools.count(int(time.time()) % 1_000_000 * 1000 + 100_000_000)


class ActionError(ValueError):
    """A user action that cannot happen (unknown user, no such button, ...)."""


class UserActions:
    """User-side operations on the world; each turns into updates for the bot."""

    def __init__(self, world: World, bot_user: Callable[[], Json | None]) -> None:
        self.world = world
        self.bot_user = bot_user

    def create_user(
        self,
        first_name: str,
        username: str | None = None,
        language_code: str | None = "en",
        user_id: int | None = None,
        last_name: str | None = None,
    ) -> Json:
        """Create (or update) a user and their private chat with the bot."""
        uid = int(user_id) if user_id is not None else next(_ids)
        while user_id is None and uid in self.world.users:  # people restored from a snapshot
            uid = next(_ids)
        user: Json = {"id": uid, "is_bot": False, "first_name": first_name or "User"}
        chat: Json = {"id": uid, "type": "private", "first_name": user["first_name"]}
        for key, value in (("last_name", last_name), ("username", username)):
            if value:
                user[key] = chat[key] = value
        if language_code:
            user["language_code"] = language_code
        self.world.users[uid] = user
        self.world.chats[uid] = chat
        self.world.bump()
        return user

    def user(self, user_id: int) -> Json:
        found = self.world.users.get(int(user_id))
        if found is None:
            raise ActionError(f"unknown user {user_id}")
        return found

    def _message(self, user_id: int, **content: Any) -> Json:
        user = self.user(user_id)
        chat = self.world.chats[user["id"]]
        message: Json = {
            "message_id": self.world.next_message_id(chat["id"]),
            "from": user,
            "chat": chat,
            "date": int(time.time()),
            **content,
        }
        self.world.add_message(message, outgoing=False)
        if chat["id"] not in self.world.blocked:
            self.world.push_update("message", message)
        return message

    def send_text(self, user_id: int, text: str) -> Json:
        """A text message; a leading /command gets a bot_command entity."""
        if not text.strip():
            raise ActionError("empty text")
        content: Json = {"text": text}
        match = _COMMAND.match(text)
        if match:
            size = len(match.group(0).encode("utf-16-le")) // 2
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": size}]
        return self._message(user_id, **content)

    def send_photo(
        self, user_id: int, data: bytes, caption: str | None = None, group: str | None = None
    ) -> Json:
        """A photo: stored with several PhotoSizes, the original being the largest."""
        try:
            sizes = self.world.files.add_photo(data)
        except ValueError as exc:
            raise ActionError(f"not an image: {exc}") from exc
        content: Json = {"photo": sizes}
        if caption:
            content["caption"] = caption
        if group:
            content["media_group_id"] = group
        return self._message(user_id, **content)

    def send_album(
        self, user_id: int, images: list[bytes], caption: str | None = None
    ) -> list[Json]:
        """Several photos sharing a media_group_id, delivered as separate updates."""
        if not 1 <= len(images) <= 10:
            raise ActionError("an album holds 1 to 10 photos")
        if len(images) == 1:
            return [self.send_photo(user_id, images[0], caption)]
        group = str(secrets.randbits(63))
        return [
            self.send_photo(user_id, data, caption if i == 0 else None, group)
            for i, data in enumerate(images)
        ]

    def send_document(
        self,
        user_id: int,
        data: bytes,
        file_name: str,
        mime_type: str | None = None,
        caption: str | None = None,
    ) -> Json:
        stored = self.world.files.add_document(data, file_name, mime_type)
        content: Json = {"document": stored.as_document()}
        if caption:
            content["caption"] = caption
        return self._message(user_id, **content)

    def press_button(
        self, user_id: int, message_id: int, data: str | None = None, text: str | None = None
    ) -> str:
        """Press a callback button of a bot message (by its data or text); the query id."""
        user = self.user(user_id)
        record = self.world.messages.get(user["id"], {}).get(int(message_id))
        if record is None or record.deleted or not record.outgoing:
            raise ActionError(f"no bot message {message_id} in chat {user['id']}")
        rows = (record.message.get("reply_markup") or {}).get("inline_keyboard", [])
        buttons = [b for row in rows for b in row if "callback_data" in b]
        chosen = [
            b
            for b in buttons
            if (data is None or b["callback_data"] == data) and (text is None or b["text"] == text)
        ]
        if not chosen:
            raise ActionError("no such callback button on that message")
        query: Json = {
            "id": str(secrets.randbits(62)),
            "from": user,
            "message": record.message,
            "chat_instance": str(user["id"] * 7 + 1),
            "data": chosen[0]["callback_data"],
        }
        self.world.callbacks[query["id"]] = CallbackRecord(query, user["id"], time.monotonic())
        self.world.push_update("callback_query", query)
        return str(query["id"])

    def set_blocked(self, user_id: int, blocked: bool) -> None:
        """Block or unblock the bot; the bot gets a my_chat_member update."""
        user = self.user(user_id)
        was = user["id"] in self.world.blocked
        if was == blocked:
            return
        if blocked:
            self.world.blocked.add(user["id"])
        else:
            self.world.blocked.discard(user["id"])
        bot = self.bot_user()
        if bot is not None:
            member = {"status": "member", "user": bot}
            banned = {"status": "kicked", "user": bot, "until_date": 0}
            self.world.push_update(
                "my_chat_member",
                {
                    "chat": self.world.chats[user["id"]],
                    "from": user,
                    "date": int(time.time()),
                    "old_chat_member": member if blocked else banned,
                    "new_chat_member": banned if blocked else member,
                },
            )
        self.world.publish(user["id"], {"type": "blocked", "blocked": blocked})
