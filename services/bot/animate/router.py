"""The animate button under an opened gallery picture: "🎬 Animate" sends a new message with
the price and asks for a motion prompt; the user types one, or presses the start button to
skip it. The job starts (or is refused in words: already running, too many jobs, too few
credits) and a new message follows it to the video."""

from __future__ import annotations

from uuid import UUID

from aiogram import F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from services.bot.animate import keyboards as kb
from services.bot.animate.callbacks import AnimateCb
from services.bot.animate.service import SECONDS, AlreadyRunning, AnimationService
from services.bot.animate.states import Animate
from services.bot.app.filters import Is
from services.bot.app.metrics import BotMetrics
from services.bot.app.models import User
from services.bot.app.routing import FeatureRouter
from services.bot.app.screens import chat_of, stale
from services.bot.app.sender import Sender
from services.bot.app.texts import Translator
from services.bot.credits.callbacks import top_up
from services.bot.generation.prompts import PromptRejected
from services.bot.generation.prompts.builder import MAX_USER_PROMPT, user_text
from services.bot.generation.service import GenerationRefused, announce
from services.kit import credits
from services.kit.credits import InsufficientCredits

KEY = "animate_image_id"


async def offer(
    callback: CallbackQuery, callback_data: AnimateCb, user: User, t: Translator,
    animations: AnimationService, state: FSMContext, sender: Sender,
) -> None:  # fmt: skip
    item = await animations.source(user.id, callback_data.image_id)
    if item is None:
        await stale(callback, t.plain("gallery.not_found"))
        return
    await state.set_state(Animate.motion)
    await state.update_data({KEY: str(item.id)})
    balance = await credits.balance(animations.pool, user.id)
    text = t("animate.offer", seconds=SECONDS, price=animations.price, balance=balance)
    await sender.send(chat_of(callback, user), text, kb.offer(t, item.id, animations.price))
    await callback.answer()


async def start(
    chat_id: int, user: User, t: Translator, animations: AnimationService, sender: Sender,
    metrics: BotMetrics, image_id: UUID, motion: str | None,
) -> str | None:  # fmt: skip
    """Start the job and send the message that follows it; else the refusal in words."""
    outcome, refusal = await _create(chat_id, user, t, animations, sender, image_id, motion)
    metrics.animations_requested.labels(outcome).inc()
    return refusal


async def _create(
    chat_id: int, user: User, t: Translator, animations: AnimationService, sender: Sender,
    image_id: UUID, motion: str | None,
) -> tuple[str, str | None]:  # fmt: skip
    """(outcome label, refusal in words or None)."""
    try:
        made = await animations.create(user.id, image_id, motion)
    except AlreadyRunning:
        return "already_running", t.plain("animate.already_running")
    except GenerationRefused:
        return "refused_limit", t.plain("animate.refused_limit", limit=animations.max_active)
    except InsufficientCredits as exc:
        text = t("credits.not_enough", price=exc.needed, balance=exc.balance)
        await sender.send(chat_id, text, top_up(t))
        return "insufficient_credits", None
    if made is None:
        return "not_found", t.plain("gallery.not_found")
    await announce(animations.pool, sender, made.id, chat_id, t("animate.queued", seconds=SECONDS))
    return "started", None


async def skip_prompt(
    callback: CallbackQuery, callback_data: AnimateCb, user: User, t: Translator,
    animations: AnimationService, state: FSMContext, sender: Sender, metrics: BotMetrics,
) -> None:  # fmt: skip
    await state.clear()
    chat_id = chat_of(callback, user)
    image_id = callback_data.image_id
    refusal = await start(chat_id, user, t, animations, sender, metrics, image_id, None)
    if refusal is not None:
        await callback.answer(refusal, show_alert=True)
        return
    await callback.answer(t.plain("animate.started"))
    if isinstance(callback.message, Message):
        await callback.message.edit_reply_markup(reply_markup=None)


async def got_motion(
    message: Message, user: User, t: Translator, animations: AnimationService,
    state: FSMContext, sender: Sender, metrics: BotMetrics,
) -> None:  # fmt: skip
    """Typed text is the motion prompt; empty or too long gets the limit named, and the
    offer stays open for another try."""
    try:
        motion = user_text(message.text or "")
    except PromptRejected:
        await message.answer(t("animate.prompt_hint", limit=MAX_USER_PROMPT))
        return
    image_id = (await state.get_data()).get(KEY)
    await state.clear()
    if image_id is None:
        await message.answer(t("common.stale"))
        return
    chat_id = message.chat.id
    refusal = await start(chat_id, user, t, animations, sender, metrics, UUID(image_id), motion)
    if refusal is not None:
        await message.answer(refusal)


async def not_a_prompt(message: Message, t: Translator) -> None:
    await message.answer(t("animate.prompt_hint", limit=MAX_USER_PROMPT))


async def cancel(
    callback: CallbackQuery, t: Translator, state: FSMContext
) -> None:  # fmt: skip
    await state.clear()
    await callback.answer(t.plain("animate.cancelled"))
    if isinstance(callback.message, Message):
        await callback.message.edit_reply_markup(reply_markup=None)


def build() -> Router:
    router = FeatureRouter(name="animate", callbacks=(AnimateCb,))
    router.callback_query.register(offer, AnimateCb.filter(F.action == "menu"))
    router.callback_query.register(skip_prompt, AnimateCb.filter(F.action == "go"))
    router.callback_query.register(cancel, AnimateCb.filter(F.action == "cancel"))
    in_offer = StateFilter(Animate.motion)
    router.message.register(got_motion, in_offer, Is(F.text), Is(~F.text.startswith("/")))
    router.message.register(not_a_prompt, in_offer, Is(~F.text.startswith("/")))
    return router
