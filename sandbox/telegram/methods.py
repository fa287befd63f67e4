"""Bot API methods for text messages, edits, callbacks, chat actions and commands."""

from __future__ import annotations

import copy
import re
import time
from typing import Any

from sandbox.telegram.api import Call, method
from sandbox.telegram.rules import bad_request, check_text, format_text
from sandbox.telegram.state import Json, MessageRecord

__all__: list[str] = []

NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
QUERY_TOO_OLD = "query is too old and response timeout expired or query ID is invalid"
CHAT_ACTIONS = frozenset(
    [
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    ]
)
COMMAND = re.compile(r"[a-z0-9_]{1,32}")


@method("getMe")
async def get_me(call: Call) -> Json:
    return call.bot


@method("logOut", "close")
async def log_out(call: Call) -> bool:
    return True


def _text_fields(call: Call) -> Json:
    params = call.params
    parsed = format_text(str(params.values.get("text") or ""), params.get_str("parse_mode"))
    check_text(parsed)
    fields: Json = {"text": parsed.text}
    entities = parsed.entities or (
        params.get_json("entities") if not params.get_str("parse_mode") else None
    )
    if entities:
        fields["entities"] = entities
    return fields


@method("sendMessage")
async def send_message(call: Call) -> Json:
    chat = call.target_chat()
    message = call.new_message(chat)
    message.update(_text_fields(call))
    markup = call.inline_markup()
    if markup:
        message["reply_markup"] = markup
    return call.store(message)


def _editable(call: Call) -> MessageRecord:
    if call.params.get_str("inline_message_id"):
        raise bad_request("inline messages are not supported by the emulator", "unsupported")
    chat = call.target_chat()
    record = call.world.record(
        chat["id"], call.params.required("message_id"), "message to edit not found"
    )
    if not record.outgoing:
        raise bad_request("message can't be edited", "message_not_editable")
    return record


def _apply_edit(call: Call, record: MessageRecord, new: Json) -> Json:
    markup = call.inline_markup()
    new.pop("reply_markup", None)
    if markup:
        new["reply_markup"] = markup
    keys = ("text", "entities", "caption", "caption_entities", "reply_markup")
    unchanged = all(new.get(k) == record.message.get(k) for k in keys)
    if unchanged and call.world.limits.not_modified:
        raise bad_request(NOT_MODIFIED, "not_modified")
    if call.world.limits.limit_edits:
        call.world.rate.acquire(new["chat"]["id"])
    new["edit_date"] = int(time.time())
    call.world.edit(record, new)
    return new


@method("editMessageText")
async def edit_message_text(call: Call) -> Json:
    record = _editable(call)
    if "text" not in record.message:
        raise bad_request("there is no text in the message to edit", "message_not_editable")
    new = copy.deepcopy(record.message)
    new.pop("entities", None)
    new.update(_text_fields(call))
    return _apply_edit(call, record, new)


@method("editMessageCaption")
async def edit_message_caption(call: Call) -> Json:
    record = _editable(call)
    if "text" in record.message:
        raise bad_request("there is no caption in the message to edit", "message_not_editable")
    new = copy.deepcopy(record.message)
    new.pop("caption", None)
    new.pop("caption_entities", None)
    params = call.params
    call.caption_into(new, params.values.get("caption"), params.get_str("parse_mode"))
    return _apply_edit(call, record, new)


@method("editMessageReplyMarkup")
async def edit_message_reply_markup(call: Call) -> Json:
    record = _editable(call)
    return _apply_edit(call, record, copy.deepcopy(record.message))


@method("deleteMessage")
async def delete_message(call: Call) -> bool:
    chat = call.target_chat()
    record = call.world.record(
        chat["id"], call.params.required("message_id"), "message to delete not found"
    )
    record.deleted = True
    call.world.publish(chat["id"], {"type": "delete", "entry": record.as_json()})
    return True


@method("answerCallbackQuery")
async def answer_callback_query(call: Call) -> bool:
    world = call.world
    query = world.callbacks.get(str(call.params.required("callback_query_id")))
    too_old = query is not None and (
        time.monotonic() - query.pressed_at > world.limits.callback_timeout
    )
    if query is None or query.answer is not None or too_old:
        raise bad_request(QUERY_TOO_OLD, "query_too_old")
    params = call.params
    text = params.get_str("text")
    if text and len(text) > 200:
        raise bad_request("MESSAGE_TOO_LONG", "callback_answer_too_long")
    query.answer = {
        "text": text,
        "show_alert": params.get_bool("show_alert"),
        "url": params.get_str("url"),
        "cache_time": params.get_int("cache_time", 0),
    }
    world.publish(query.chat_id, {"type": "callback_answer", "answer": query.as_json()})
    return True


@method("sendChatAction")
async def send_chat_action(call: Call) -> bool:
    chat = call.target_chat()
    action = call.params.required("action")
    if action not in CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request", "invalid_parameter")
    event = {"action": action, "at": time.time()}
    call.world.actions[chat["id"]] = event
    call.world.publish(chat["id"], {"type": "action", **event})
    return True


def _commands_key(call: Call) -> str:
    scope = call.params.get_json("scope") or {}
    scope_type = scope.get("type", "default") if isinstance(scope, dict) else "default"
    return f"{scope_type}:{call.params.get_str('language_code') or ''}"


@method("setMyCommands")
async def set_my_commands(call: Call) -> bool:
    commands: Any = call.params.get_json("commands")
    if not isinstance(commands, list) or len(commands) > 100:
        raise bad_request("commands must be an array of at most 100 items", "invalid_parameter")
    for item in commands:
        name = item.get("command", "") if isinstance(item, dict) else ""
        description = item.get("description", "") if isinstance(item, dict) else ""
        if not COMMAND.fullmatch(name):
            raise bad_request("BOT_COMMAND_INVALID", "invalid_command")
        if not 1 <= len(description) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID", "invalid_command")
    call.world.commands[_commands_key(call)] = commands
    call.world.bump()
    return True


@method("getMyCommands")
async def get_my_commands(call: Call) -> list[Json]:
    return call.world.commands.get(_commands_key(call), [])


@method("deleteMyCommands")
async def delete_my_commands(call: Call) -> bool:
    call.world.commands.pop(_commands_key(call), None)
    return True


@method("getChat")
async def get_chat(call: Call) -> Json:
    chat = call.world.chat(call.params.required("chat_id"))
    gifts = dict.fromkeys(
        ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription"), True
    )
    return {
        **chat,
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": {**gifts, "gifts_from_channels": False},
    }
