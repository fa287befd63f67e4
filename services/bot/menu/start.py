"""/start, /help, /cancel and the main menu."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import KICKED, ChatMemberUpdatedFilter, Command, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, ChatMemberUpdated, Message

from services.bot.app import main_menu as menu
from services.bot.app.main_menu import MenuCb
from services.bot.app.models import User
from services.bot.app.presets import price_range
from services.bot.app.routing import FeatureRouter
from services.bot.app.screens import edit_or_send
from services.bot.app.texts import Translator
from services.bot.avatars.service import AvatarService
from services.bot.credits.service import Billing


async def greeting(t: Translator, user: User, billing: Billing) -> str:
    """The greeting with what a training and a picture cost and the user's balance, so
    prices are known before anything is created."""
    p = billing.pricing
    prices = t(
        "prices.menu_line",
        training=price_range(p),
        per_image=p.per_image,
        balance=await billing.balance(user.id),
    )
    return t("start.greeting", name=user.first_name) + "\n\n" + prices


async def cmd_start(
    message: Message, state: FSMContext, user: User, t: Translator, billing: Billing
) -> None:
    """A fresh start always works, whatever half-finished flow the user was in."""
    await state.clear()
    await message.answer(await greeting(t, user, billing), reply_markup=menu.main_menu(t))


async def cmd_help(message: Message, t: Translator) -> None:
    await message.answer(t("help.text"), reply_markup=menu.back_to_menu(t))


async def cmd_cancel(message: Message, state: FSMContext, t: Translator) -> None:
    await state.clear()
    await message.answer(t("common.cancelled"), reply_markup=menu.main_menu(t))


async def show_menu(
    callback: CallbackQuery, state: FSMContext, user: User, t: Translator, billing: Billing
) -> None:
    await state.clear()
    await edit_or_send(callback, await greeting(t, user, billing), menu.main_menu(t))
    await callback.answer()


async def show_help(callback: CallbackQuery, t: Translator) -> None:
    await edit_or_send(callback, t("help.text"), menu.back_to_menu(t))
    await callback.answer()


async def on_blocked(event: ChatMemberUpdated, avatars: AvatarService) -> None:
    """The user blocked the bot: stop notifying them until they come back."""
    await avatars.set_active(event.from_user.id, False)


def build() -> Router:
    router = FeatureRouter(name="start", callbacks=(MenuCb,))
    router.message.register(cmd_start, CommandStart())
    router.message.register(cmd_help, Command("help"))
    router.message.register(cmd_cancel, Command("cancel"))
    router.callback_query.register(show_menu, MenuCb.filter(F.action == "main"))
    router.callback_query.register(show_help, MenuCb.filter(F.action == "help"))
    router.my_chat_member.register(on_blocked, ChatMemberUpdatedFilter(KICKED))
    return router
