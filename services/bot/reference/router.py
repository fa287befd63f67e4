"""The reference flow: "🖼 My photo as a reference" on a ready avatar → send a photo (checked
and stored, `intake.py`) → three strengths with the price and the balance → a press starts
the job (or says it runs, or offers the shop) and a new message follows it to the picture."""

from __future__ import annotations

from uuid import UUID

from aiogram import Bot, F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from services.bot.app.filters import Is
from services.bot.app.models import AvatarStatus, User
from services.bot.app.photo_validation import PhotoRejected
from services.bot.app.routing import FeatureRouter
from services.bot.app.screens import View, chat_of, show, stale
from services.bot.app.sender import Sender
from services.bot.app.texts import Translator
from services.bot.avatars.service import AvatarService
from services.bot.credits.callbacks import not_enough_credits
from services.bot.generation.service import GenerationRefused, announce
from services.bot.reference import keyboards as kb
from services.bot.reference.callbacks import RefCb
from services.bot.reference.intake import MAX_BYTES, MAX_PIXELS, ReferenceIntake, upload_of
from services.bot.reference.service import AlreadyRunning, ReferenceService
from services.bot.reference.states import AVATAR_KEY, Reference
from services.bot.reference.strengths import STRENGTHS
from services.kit.credits import InsufficientCredits


async def ask(
    callback: CallbackQuery, callback_data: RefCb, state: FSMContext, user: User,
    t: Translator, avatars: AvatarService,
) -> None:  # fmt: skip
    avatar = await avatars.get(user.id, callback_data.id)
    if avatar is None or avatar.status is not AvatarStatus.COMPLETED:
        await stale(callback, t.plain("reference.avatar_gone"))
        return
    await state.set_state(Reference.photo)
    await state.update_data({AVATAR_KEY: str(avatar.id)})
    text = t("reference.ask", name=avatar.name, megabytes=MAX_BYTES // 2**20,
             megapixels=MAX_PIXELS // 1_000_000)  # fmt: skip
    await show(callback, View(text, kb.waiting(t)))
    await callback.answer()


async def got_photo(
    message: Message, bot: Bot, state: FSMContext, user: User, t: Translator,
    reference_intake: ReferenceIntake, references: ReferenceService,
) -> None:  # fmt: skip
    """Checked and stored first; only a stored photo leaves the waiting state."""
    raw = (await state.get_data()).get(AVATAR_KEY)
    if not isinstance(raw, str):  # the waiting state without its avatar (data lost)
        await state.clear()
        await message.answer(t("reference.avatar_gone"))
        return
    try:
        upload = upload_of(message)
        stored = await reference_intake.take(bot, user.id, UUID(raw), upload)
    except PhotoRejected as exc:
        await message.answer(t(f"reference.rejected.{exc.code}"))
        return
    await state.clear()
    if stored is None:
        await message.answer(t("reference.avatar_gone"))
        return
    await _offer(message, t, references, user.id, stored.id)


async def not_a_photo(message: Message, t: Translator) -> None:
    await message.answer(t("reference.rejected.not_image"))


async def offer_again(
    callback: CallbackQuery, callback_data: RefCb, user: User, t: Translator,
    references: ReferenceService,
) -> None:  # fmt: skip
    found = await references.get(user.id, callback_data.id)
    if found is None or not isinstance(callback.message, Message):
        await stale(callback, t.plain("reference.gone"))
        return
    await callback.answer()
    await _offer(callback.message, t, references, user.id, found.id)


async def _offer(
    message: Message, t: Translator, references: ReferenceService, user_id: int, ref: UUID
) -> None:
    balance = await references.balance(user_id)
    text = t("reference.choose", price=references.price, balance=balance)
    await message.answer(text, reply_markup=kb.strengths(t, ref, references.price))


async def start(
    callback: CallbackQuery, callback_data: RefCb, user: User, t: Translator,
    references: ReferenceService, sender: Sender,
) -> None:  # fmt: skip
    try:
        made = await references.create(user.id, callback_data.id, callback_data.step)
    except AlreadyRunning:
        await callback.answer(t.plain("reference.already_running"), show_alert=True)
        return
    except GenerationRefused as exc:
        key = "reference.refused_limit" if exc.code == "limit" else "reference.avatar_gone"
        await callback.answer(t.plain(key, limit=references.max_active), show_alert=True)
        return
    except InsufficientCredits as exc:
        await not_enough_credits(callback, t, exc)
        return
    if made is None:
        await stale(callback, t.plain("reference.gone"))
        return
    await callback.answer(t.plain("reference.started"))
    name = t.plain(f"reference.name_{callback_data.step}")
    chat_id = chat_of(callback, user)
    await announce(references.pool, sender, made.id, chat_id, t("reference.queued", strength=name))


def build() -> Router:
    router = FeatureRouter(name="reference", callbacks=(RefCb,))
    router.callback_query.register(ask, RefCb.filter(F.action == "ask"))
    router.callback_query.register(offer_again, RefCb.filter(F.action == "menu"))
    router.callback_query.register(
        start, RefCb.filter((F.action == "go") & F.step.in_(tuple(STRENGTHS)))
    )
    waiting = StateFilter(Reference.photo)
    router.message.register(got_photo, waiting, Is(F.photo | F.document | F.animation))
    router.message.register(not_a_photo, waiting, Is(~F.text.startswith("/")))
    return router
