"""Screens and standard answers to a button: a `View` (text + keyboard) shown in place of the
pressed message whatever kind of message it was, the "not found" and "outdated" alerts."""

from __future__ import annotations

from dataclasses import dataclass

from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from services.bot.app.models import User
from services.bot.app.texts import Translator


@dataclass(frozen=True)
class View:
    text: str
    markup: InlineKeyboardMarkup | None


async def show(callback: CallbackQuery, view: View) -> None:
    """Edit the pressed text message in place; a button under a photo or an album (whose
    text cannot become a menu), or under a message too old to edit, gets a new message."""
    message = callback.message
    if isinstance(message, Message) and message.text is not None:
        await message.edit_text(view.text, reply_markup=view.markup)
    elif message is not None and callback.bot is not None:
        await callback.bot.send_message(message.chat.id, view.text, reply_markup=view.markup)


async def stale(callback: CallbackQuery, text: str) -> None:
    """A button whose flow is over (or forged data that parsed): the localized alert."""
    await callback.answer(text, show_alert=True)


def chat_of(callback: CallbackQuery, user: User) -> int:
    """Where to answer a button with a new message: its chat (the user's private chat when
    the message is no longer known)."""
    return callback.message.chat.id if callback.message is not None else user.id


async def not_found(callback: CallbackQuery, t: Translator) -> None:
    """Unknown id, or someone else's: the same answer, so ids reveal nothing."""
    await callback.answer(t.plain("common.not_found"), show_alert=True)


async def edit_or_send(
    callback: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None
) -> None:
    """Replace the pressed message's text; if it is too old to edit, send a new one."""
    message = callback.message
    if isinstance(message, Message):
        await message.edit_text(text, reply_markup=markup)
    elif message is not None and callback.bot is not None:
        await callback.bot.send_message(message.chat.id, text, reply_markup=markup)
