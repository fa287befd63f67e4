"""Start, cancel and retry training from the avatar's live message, and answer a poor
likeness check (retrain free, refund, keep) from its verdict.

"Start training" opens the confirmation card in place (`confirm_card`); one press of a
preset there starts the training with it and turns the card into the progress message.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery

from services.bot.app import presets
from services.bot.app.models import AvatarStatus, User
from services.bot.app.routing import FeatureRouter
from services.bot.app.screens import edit_or_send, not_found
from services.bot.app.sender import Sender
from services.bot.app.texts import Translator
from services.bot.avatars.service import AvatarService
from services.bot.credits.callbacks import not_enough_credits
from services.bot.credits.service import Billing
from services.bot.training import progress
from services.bot.training.callbacks import GO_ACTIONS, TrainingCb
from services.bot.training.check import Decision, TrainingCheck
from services.bot.training.check_views import decided
from services.bot.training.confirm_card import card
from services.kit.credits import InsufficientCredits


async def confirm(
    callback: CallbackQuery,
    callback_data: TrainingCb,
    user: User,
    t: Translator,
    avatars: AvatarService,
    billing: Billing,
) -> None:
    """The card: what each preset costs and takes, and the balance, before anything is paid."""
    avatar = await avatars.get(user.id, callback_data.avatar_id)
    if avatar is None:
        await not_found(callback, t)
        return
    if avatar.status is not AvatarStatus.READY:
        await _refused(callback, callback_data, user, t, avatars)
        return
    view = card(t, avatar, avatars.pricing, await billing.balance(user.id))
    await edit_or_send(callback, view.text, view.markup)
    await callback.answer()


async def start(
    callback: CallbackQuery,
    callback_data: TrainingCb,
    state: FSMContext,
    user: User,
    t: Translator,
    avatars: AvatarService,
    sender: Sender,
) -> None:
    """One transaction moves the avatar to training with the pressed preset and queues the
    request; a double press finds the avatar already training and only gets a toast."""
    if callback.message is None:
        await callback.answer(t.plain("common.stale"), show_alert=True)
        return
    chat_id, message_id = callback.message.chat.id, callback.message.message_id
    retry = callback_data.action == "retry"
    priority = callback_data.priority
    if not retry:
        avatar = await avatars.get(user.id, callback_data.avatar_id)
        if avatar is None:
            await not_found(callback, t)
            return
        if priority is None or not presets.offered(avatar.training_type, priority):
            await callback.answer(t.plain("presets.not_offered"), show_alert=True)
            return
    try:
        started = await avatars.start_training(
            user.id, callback_data.avatar_id, chat_id, message_id, retry=retry, priority=priority
        )
    except InsufficientCredits as exc:
        await not_enough_credits(callback, t, exc)
        return
    if started is None:
        await _refused(callback, callback_data, user, t, avatars)
        return
    await state.clear()
    await callback.answer(t.plain("training.started"))
    view = progress.queued(t, started)
    await sender.edit(chat_id, message_id, view.text, view.markup)


async def _refused(
    callback: CallbackQuery, data: TrainingCb, user: User, t: Translator, avatars: AvatarService
) -> None:
    avatar = await avatars.get(user.id, data.avatar_id)
    if avatar is None:
        await not_found(callback, t)
    elif avatar.status is AvatarStatus.TRAINING:
        await callback.answer(t.plain("training.already"))
    elif avatar.photo_count < avatars.min_photos:
        await callback.answer(
            t.plain("training.not_enough", min=avatars.min_photos), show_alert=True
        )
    else:
        await callback.answer(t.plain("common.stale"), show_alert=True)


async def cancel(
    callback: CallbackQuery,
    callback_data: TrainingCb,
    user: User,
    t: Translator,
    avatars: AvatarService,
    sender: Sender,
) -> None:
    avatar = await avatars.request_cancel(user.id, callback_data.avatar_id)
    if avatar is None:
        if await avatars.get(user.id, callback_data.avatar_id) is None:
            await not_found(callback, t)
        else:
            await callback.answer(t.plain("common.stale"), show_alert=True)
        return
    await callback.answer(t.plain("training.cancel_requested"))
    if avatar.progress_chat_id and avatar.progress_message_id:
        text = t("progress.cancelling", name=avatar.name)
        await sender.edit(avatar.progress_chat_id, avatar.progress_message_id, text)


async def decide(
    callback: CallbackQuery,
    callback_data: TrainingCb,
    user: User,
    t: Translator,
    checks: TrainingCheck,
    sender: Sender,
) -> None:
    """One answer per poor check; a second press (or an old message) only gets a toast."""
    if callback.message is None:
        await callback.answer(t.plain("common.stale"), show_alert=True)
        return
    chat_id, message_id = callback.message.chat.id, callback.message.message_id
    done = await checks.decide(
        user.id, callback_data.avatar_id, Decision(callback_data.action), chat_id, message_id
    )
    if done is None:
        await callback.answer(t.plain("check.already"), show_alert=True)
        return
    if done.decision is Decision.REDO:  # the verdict becomes the retrain's progress message
        await callback.answer(t.plain("check.redo_started", left_out=done.left_out))
        view = progress.queued(t, done.avatar)
    else:
        await callback.answer()
        refunded = done.refund.amount if done.refund is not None else 0
        view = decided(t, done.avatar, done.decision, refunded)
    await sender.edit(chat_id, message_id, view.text, view.markup)


def build() -> Router:
    router = FeatureRouter(name="training", callbacks=(TrainingCb,))
    router.callback_query.register(confirm, TrainingCb.filter(F.action == "start"))
    router.callback_query.register(start, TrainingCb.filter(F.action.in_({*GO_ACTIONS, "retry"})))
    router.callback_query.register(cancel, TrainingCb.filter(F.action == "cancel"))
    router.callback_query.register(decide, TrainingCb.filter(F.action.in_(set(Decision))))
    return router
