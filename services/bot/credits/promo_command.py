"""/promo CODE: a user redeems a promo code (admins create them with /promo_new)."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from services.bot.app.models import User
from services.bot.app.routing import FeatureRouter
from services.bot.app.texts import Translator
from services.bot.credits.promo_codes import FreeCredits


async def cmd_promo(
    message: Message, command: CommandObject, t: Translator, user: User, free_credits: FreeCredits
) -> None:
    if not command.args:
        await message.answer(t("credits.promo_usage"))
        return
    result = await free_credits.redeem(user.id, command.args)
    key = f"credits.promo_{result.outcome.value}"
    await message.answer(t(key, credits=result.credits, balance=result.balance))


def build() -> Router:
    router = FeatureRouter(name="promo")
    router.message.register(cmd_promo, Command("promo"))
    return router
