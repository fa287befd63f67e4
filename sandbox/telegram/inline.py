"""Inline mode: a user types `@bot words`, the bot answers with `answerInlineQuery`, the
user picks a result.

The emulator has only each user's private chat with the bot, so a picked result is shown
there as the user's message `via_bot` (as it would look in the chat where it was picked),
without an update to the bot — Telegram does not send one either, unless inline feedback
is switched on with @BotFather.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sandbox.telegram.actions import ActionError
from sandbox.telegram.api import Call, method
from sandbox.telegram.rules import bad_request, check_caption, check_reply_markup, format_text
from sandbox.telegram.state import InlineQueryRecord, Json, World

if TYPE_CHECKING:
    from sandbox.telegram.server import TelegramEmulator

__all__ = ["InlineActions", "inline_routes"]

MAX_RESULTS = 50
MAX_QUERY = 256
MAX_OFFSET = 64
RESULT_TYPES = frozenset(
    {"article", "photo", "gif", "mpeg4_gif", "video", "audio", "voice", "document", "sticker",
     "location", "venue", "contact", "game"}
)  # fmt: skip
START_PARAMETER = re.compile(r"[A-Za-z0-9_-]{1,64}")
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"


def _check_result(call: Call, result: Any, seen: set[str]) -> None:
    if not isinstance(result, dict) or result.get("type") not in RESULT_TYPES:
        raise bad_request("RESULT_TYPE_INVALID", "inline_result_invalid")
    rid = result.get("id")
    if not isinstance(rid, str) or not 1 <= len(rid.encode()) <= 64:
        raise bad_request("RESULT_ID_INVALID", "inline_result_invalid")
    if rid in seen:
        raise bad_request("RESULT_ID_DUPLICATE", "inline_result_invalid")
    seen.add(rid)
    if result["type"] == "photo":
        file_id = result.get("photo_file_id")
        if file_id is not None:
            if call.world.files.photo_by_id(str(file_id)) is None:
                raise bad_request("PHOTO_INVALID: wrong file identifier", "inline_result_invalid")
        elif not (result.get("photo_url") and result.get("thumbnail_url")):
            raise bad_request("PHOTO_CONTENT_URL_EMPTY", "inline_result_invalid")
    if result["type"] == "article" and not (
        result.get("title") and isinstance(result.get("input_message_content"), dict)
    ):
        raise bad_request("ARTICLE_TITLE_EMPTY", "inline_result_invalid")
    if result.get("caption") not in (None, ""):
        check_caption(format_text(str(result["caption"]), result.get("parse_mode")))
    check_reply_markup(result.get("reply_markup"))


def _check_button(button: Any) -> None:
    if button is None:
        return
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise bad_request("BUTTON_INVALID", "inline_button_invalid")
    start = button.get("start_parameter")
    has_app = button.get("web_app") is not None
    if (start is None) == (not has_app):
        raise bad_request("BUTTON_TYPE_INVALID", "inline_button_invalid")
    if start is not None and not START_PARAMETER.fullmatch(str(start)):
        raise bad_request("START_PARAM_INVALID", "inline_button_invalid")


@method("answerInlineQuery")
async def answer_inline_query(call: Call) -> bool:
    world, params = call.world, call.params
    record = world.inline_queries.get(str(params.required("inline_query_id")))
    too_old = record is not None and (
        time.monotonic() - record.asked_at > world.limits.callback_timeout
    )
    if record is None or record.answer is not None or too_old:
        raise bad_request(QUERY_TOO_OLD, "query_too_old")
    results = params.get_json("results")
    if not isinstance(results, list) or len(results) > MAX_RESULTS:
        raise bad_request("RESULTS_TOO_MUCH", "inline_results_invalid")
    seen: set[str] = set()
    for result in results:
        _check_result(call, result, seen)
    next_offset = params.get_str("next_offset") or ""
    if len(next_offset.encode()) > MAX_OFFSET:
        raise bad_request("NEXT_OFFSET_INVALID", "inline_results_invalid")
    button = params.get_json("button")
    _check_button(button)
    record.answer = {
        "results": results,
        "cache_time": params.get_int("cache_time", 300),
        "is_personal": params.get_bool("is_personal"),
        "next_offset": next_offset,
        "button": button,
    }
    world.publish(record.user_id, {"type": "inline_answer", "inline_query": record.as_json()})
    return True


class InlineActions:
    """The user's side of inline mode (also behind the control API)."""

    def __init__(self, world: World, bot_user: Callable[[], Json | None]) -> None:
        self.world = world
        self.bot_user = bot_user

    def query(self, user_id: int, text: str, offset: str = "") -> str:
        """Type `@bot text`: an inline_query update for the bot; returns its id."""
        user = self.world.users.get(int(user_id))
        if user is None:
            raise ActionError(f"unknown user {user_id}")
        if len(text) > MAX_QUERY:
            raise ActionError(f"an inline query holds at most {MAX_QUERY} characters")
        query: Json = {
            "id": str(secrets.randbits(62)),
            "from": user,
            "query": text,
            "offset": offset,
            "chat_type": "sender",
        }
        self.world.inline_queries[query["id"]] = InlineQueryRecord(
            query, user["id"], time.monotonic()
        )
        self.world.push_update("inline_query", query)
        return str(query["id"])

    def answer(self, query_id: str) -> Json | None:
        record = self.world.inline_queries.get(query_id)
        return None if record is None else record.answer

    async def wait_answer(self, query_id: str, within: float = 5.0) -> Json:
        """The bot's answer to an inline query (TimeoutError if none comes)."""
        await self.world.wait_for(lambda: self.answer(query_id) is not None, within)
        answer = self.answer(query_id)
        assert answer is not None
        return answer

    def choose(self, user_id: int, query_id: str, result_id: str) -> Json:
        """Pick a result: it appears in the chat as the user's message via the bot."""
        record = self.world.inline_queries.get(query_id)
        if record is None or record.user_id != int(user_id) or record.answer is None:
            raise ActionError("no answered inline query with that id for this user")
        found = [r for r in record.answer["results"] if r.get("id") == result_id]
        if not found:
            raise ActionError("no such result in the answer")
        user = self.world.users[record.user_id]
        content = self._content(found[0])
        message: Json = {
            "message_id": self.world.next_message_id(user["id"]),
            "from": user,
            "chat": self.world.chats[user["id"]],
            "date": int(time.time()),
            "via_bot": self.bot_user(),
            **content,
        }
        self.world.add_message(message, outgoing=False)
        return message

    def _content(self, result: Json) -> Json:
        if result["type"] == "photo" and result.get("photo_file_id"):
            sizes = self.world.files.photo_by_id(str(result["photo_file_id"])) or []
            content: Json = {"photo": sizes}
            if result.get("caption"):
                content["caption"] = result["caption"]
            return content
        text = (result.get("input_message_content") or {}).get("message_text")
        return {"text": str(text or result.get("title") or result["id"])}


def inline_routes(emu: TelegramEmulator) -> list[web.RouteDef]:
    """Control API: type an inline query, read the answer, pick a result."""
    actions = emu.inline

    def ok(value: Any) -> web.Response:
        return web.json_response(value)

    def bad(exc: Exception) -> web.Response:
        return web.json_response({"error": str(exc)}, status=400)

    async def ask(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            query_id = actions.query(
                int(request.match_info["user_id"]),
                str(body.get("query", "")),
                str(body.get("offset", "")),
            )
        except (ActionError, ValueError, TypeError, AttributeError) as exc:
            return bad(exc)
        return ok({"inline_query_id": query_id})

    async def answer(request: web.Request) -> web.StreamResponse:
        return ok({"answer": actions.answer(request.match_info["query_id"])})

    async def choose(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
            message = actions.choose(
                int(request.match_info["user_id"]),
                request.match_info["query_id"],
                str(body.get("result_id", "")),
            )
        except (ActionError, ValueError, TypeError, AttributeError) as exc:
            return bad(exc)
        return ok(message)

    p = "/_emu"
    return [
        web.post(f"{p}/users/{{user_id}}/inline", ask),
        web.get(f"{p}/inline/{{query_id}}", answer),
        web.post(f"{p}/users/{{user_id}}/inline/{{query_id}}/choose", choose),
    ]
