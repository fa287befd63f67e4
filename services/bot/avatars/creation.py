"""Creating an avatar: name → training type (one click, prices and balance on the card) →
gender (portrait only) → photo upload.

The type card shows what each quality preset costs, the user's balance and a buy button
before any photo is asked for. A style learns a look, not a person: it is never asked who
is in the pictures (its `gender` stays NULL) and is asked for pictures of the look.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from contracts import TrainingType
from services.bot.app.filters import Is
from services.bot.app.main_menu import MenuCb
from services.bot.app.models import Gender, User
from services.bot.app.names import sanitize_name
from services.bot.app.pricing import Pricing
from services.bot.app.routing import FeatureRouter
from services.bot.app.screens import edit_or_send
from services.bot.app.texts import Translator
from services.bot.avatars import keyboards as kb
from services.bot.avatars.callbacks import GenderCb, TrainingTypeCb
from services.bot.avatars.photo_intake import counter_text
from services.bot.avatars.service import AvatarService
from services.bot.avatars.states import CreateAvatar, Upload
from services.bot.credits.service import Billing


async def begin(callback: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await state.set_state(CreateAvatar.name)
    await edit_or_send(callback, t("avatar.ask_name"))
    await callback.answer()


async def cmd_new(message: Message, state: FSMContext, t: Translator) -> None:
    await state.set_state(CreateAvatar.name)
    await message.answer(t("avatar.ask_name"))


async def type_card_text(t: Translator, user: User, billing: Billing) -> str:
    """The type question with every preset's price and the balance under it."""
    p: Pricing = billing.pricing
    prices = t(
        "prices.type_card",
        speed=p.training_speed,
        quality=p.training,
        high_res=p.training_high_res,
        per_image=p.per_image,
        balance=await billing.balance(user.id),
    )
    return t("avatar.ask_type") + "\n\n" + prices


async def got_name(
    message: Message, state: FSMContext, user: User, t: Translator, billing: Billing
) -> None:
    name = sanitize_name(message.text or "")
    if name is None:
        await message.answer(t("avatar.bad_name"))
        return
    await state.update_data(name=name)
    await state.set_state(CreateAvatar.training_type)
    text = await type_card_text(t, user, billing)
    await message.answer(text, reply_markup=kb.training_type(t))


async def not_a_name(message: Message, t: Translator) -> None:
    await message.answer(t("avatar.bad_name"))


async def type_info(callback: CallbackQuery, callback_data: TrainingTypeCb, t: Translator) -> None:
    value = callback_data.value.value
    await edit_or_send(
        callback,
        t(f"avatar.type_{value}_details"),
        kb.training_type_confirm(t, callback_data.value),
    )
    await callback.answer()


async def type_back(callback: CallbackQuery, user: User, t: Translator, billing: Billing) -> None:
    await edit_or_send(callback, await type_card_text(t, user, billing), kb.training_type(t))
    await callback.answer()


async def type_picked(
    callback: CallbackQuery,
    callback_data: TrainingTypeCb,
    state: FSMContext,
    user: User,
    t: Translator,
    avatars: AvatarService,
) -> None:
    """A style is created at once; a portrait first asks who is in the photos."""
    data = await state.get_data()
    if callback_data.value is TrainingType.STYLE:
        await _create(callback, state, user, t, avatars, data["name"], None, TrainingType.STYLE)
        return
    await state.update_data(training_type=callback_data.value.value)
    await state.set_state(CreateAvatar.gender)
    await edit_or_send(callback, t("avatar.ask_gender", name=data["name"]), kb.gender(t))
    await callback.answer()


async def got_gender(
    callback: CallbackQuery,
    callback_data: GenderCb,
    state: FSMContext,
    user: User,
    t: Translator,
    avatars: AvatarService,
) -> None:
    data = await state.get_data()
    kind = TrainingType(data.get("training_type", TrainingType.PORTRAIT.value))
    await _create(callback, state, user, t, avatars, data["name"], callback_data.value, kind)


async def _create(
    callback: CallbackQuery,
    state: FSMContext,
    user: User,
    t: Translator,
    avatars: AvatarService,
    name: str,
    gender: Gender | None,
    kind: TrainingType,
) -> None:
    """Creates the avatar; the pressed card becomes its live photo counter."""
    avatar = await avatars.create(user.id, name, gender, kind)
    await state.set_state(Upload.photos)
    await state.set_data({"avatar_id": str(avatar.id)})
    limits = {"min": avatars.min_photos, "max": avatars.max_photos}
    if kind is TrainingType.STYLE:
        intro = t("style_avatar.intro", **limits)
    else:
        intro = t("photos.intro", type=t.plain(f"avatar.type_{kind.value}"), **limits)
    counter = counter_text(t, avatar, avatars.min_photos, avatars.max_photos)
    await edit_or_send(callback, intro + "\n\n" + counter)
    if callback.message is not None:
        await avatars.set_live_message(
            avatar.id, callback.message.chat.id, callback.message.message_id
        )
    await callback.answer()


def build() -> Router:
    router = FeatureRouter(name="avatar", callbacks=(MenuCb, GenderCb, TrainingTypeCb))
    router.callback_query.register(begin, MenuCb.filter(F.action == "create"))
    router.message.register(cmd_new, Command("new"))
    router.message.register(got_name, StateFilter(CreateAvatar.name), Is(F.text))
    router.message.register(not_a_name, StateFilter(CreateAvatar.name))
    router.callback_query.register(got_gender, StateFilter(CreateAvatar.gender), GenderCb.filter())
    router.callback_query.register(
        type_info,
        StateFilter(CreateAvatar.training_type),
        TrainingTypeCb.filter(F.action == "info"),
    )
    router.callback_query.register(
        type_back,
        StateFilter(CreateAvatar.training_type),
        TrainingTypeCb.filter(F.action == "back"),
    )
    router.callback_query.register(
        type_picked,
        StateFilter(CreateAvatar.training_type),
        TrainingTypeCb.filter(F.action == "pick"),
    )
    return router
