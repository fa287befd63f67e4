"""Small helpers shared by handlers: where a callback's message is, and standard answers."""

from __future__ import annotations

from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from services.bot.keyboards.shop import top_up
from services.bot.texts import Translator
from services.kit.credits import InsufficientCredits


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


async def not_enough_credits(
    callback: CallbackQuery, t: Translator, exc: InsufficientCredits
) -> None:
    """Keep the pressed screen (the user may top up and press again) and say, with a button
    to the shop, what is missing."""
    await callback.answer()
    text = t("credits.not_enough", price=exc.needed, balance=exc.balance)
    if callback.message is not None and callback.bot is not None:
        await callback.bot.send_message(callback.message.chat.id, text, reply_markup=top_up(t))
