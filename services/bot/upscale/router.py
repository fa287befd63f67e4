"""The upscale buttons under an opened gallery picture: "⬆️ Upscale" turns the picture's
buttons into ×2 / ×4 with their prices; a factor starts the job (or says it runs, or sends
the earlier result again) and a new message follows it to the document."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.types import CallbackQuery, Message

from services.bot.app.models import User
from services.bot.app.routing import FeatureRouter
from services.bot.app.screens import chat_of, stale
from services.bot.app.sender import Sender
from services.bot.app.texts import Translator
from services.bot.credits.callbacks import not_enough_credits
from services.bot.gallery.image_files import as_upload, load
from services.bot.generation.service import GenerationRefused, announce
from services.bot.upscale import keyboards as kb
from services.bot.upscale.callbacks import UpscaleCb
from services.bot.upscale.service import AlreadyDone, AlreadyRunning, UpscaleService
from services.kit import credits
from services.kit.credits import InsufficientCredits

FACTORS = (2, 4)


async def show_choice(
    callback: CallbackQuery, callback_data: UpscaleCb, user: User, t: Translator,
    upscales: UpscaleService,
) -> None:  # fmt: skip
    item = await upscales.images.get(user.id, callback_data.image_id)
    if item is None or not isinstance(callback.message, Message):
        await stale(callback, t.plain("gallery.not_found"))
        return
    prices = {factor: upscales.price(item, factor) for factor in FACTORS}
    await callback.message.edit_reply_markup(reply_markup=kb.choice(t, item.id, prices))
    balance = await credits.balance(upscales.pool, user.id)
    await callback.answer(t.plain("upscale.choose", balance=balance))


async def start(
    callback: CallbackQuery, callback_data: UpscaleCb, user: User, t: Translator,
    upscales: UpscaleService, sender: Sender,
) -> None:  # fmt: skip
    factor = callback_data.factor
    try:
        made = await upscales.create(user.id, callback_data.image_id, factor)
    except AlreadyRunning:
        await callback.answer(t.plain("upscale.already_running", factor=factor), show_alert=True)
        return
    except GenerationRefused:
        await callback.answer(
            t.plain("upscale.refused_limit", limit=upscales.max_active), show_alert=True
        )
        return
    except InsufficientCredits as exc:
        await not_enough_credits(callback, t, exc)
        return
    chat_id = chat_of(callback, user)
    if made is None:
        await stale(callback, t.plain("gallery.not_found"))
        return
    if isinstance(made, AlreadyDone):
        await callback.answer()
        data = await load(upscales.store, made.result.object_name)
        if data is not None and callback.bot is not None:
            await callback.bot.send_document(
                chat_id, as_upload(made.result, data),
                caption=t("upscale.already_done", factor=factor),
            )  # fmt: skip
        return
    await callback.answer(t.plain("upscale.started"))
    await announce(upscales.pool, sender, made.id, chat_id, t("upscale.queued", factor=factor))


def build() -> Router:
    router = FeatureRouter(name="upscale", callbacks=(UpscaleCb,))
    router.callback_query.register(show_choice, UpscaleCb.filter(F.action == "menu"))
    router.callback_query.register(
        start, UpscaleCb.filter((F.action == "go") & F.factor.in_(FACTORS))
    )
    return router
