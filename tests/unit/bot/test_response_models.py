"""The session middleware that keeps aiogram's `Response[...]` models from being rebuilt."""

from __future__ import annotations

import gc
from typing import Any

from aiogram.methods import AnswerCallbackQuery, SendMessage, TelegramMethod
from aiogram.methods.base import Response
from aiogram.types import Message

from services.bot.app.response_models import KeepResponseModels


async def _answer(bot: Any, method: TelegramMethod[Any]) -> str:
    return f"sent {type(method).__name__}"


async def test_passes_the_call_through_and_holds_one_model_per_result_type() -> None:
    keep = KeepResponseModels()
    sent = await keep(_answer, None, SendMessage(chat_id=1, text="hi"))  # type: ignore[arg-type]
    await keep(_answer, None, SendMessage(chat_id=2, text="again"))  # type: ignore[arg-type]
    await keep(_answer, None, AnswerCallbackQuery(callback_query_id="1"))  # type: ignore[arg-type]
    assert sent == "sent SendMessage"
    assert set(keep.models) == {Message, bool}
    held = keep.models[Message]
    gc.collect()
    assert Response[Message] is held  # type: ignore[misc]
