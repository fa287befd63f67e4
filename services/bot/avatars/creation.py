"""Creating an avatar: name → gender → training type (one click) → photo upload."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from services.bot.app.filters import Is
from services.bot.app.main_menu import MenuCb
from services.bot.app.models import Gender, User
from services.bot.app.names import sanitize_name
from services.bot.app.routing import FeatureRouter
from services.bot.app.screens import edit_or_send
from services.bot.app.texts import Translator
from services.bot.avatars import keyboards as kb
from services.bot.avatars.callbacks import GenderCb, TrainingTypeCb
from services.bot.avatars.photo_intake import counter_text
from services.bot.avatars.service import AvatarService
from services.bot.avatars.states import CreateAvatar, Upload


async def begin(callback: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await state.set_state(CreateAvatar.name)
    await edit_or_send(callback, t("avatar.ask_name"))
    await callback.answer()


async def cmd_new(message: Message, state: FSMContext, t: Translator) -> None:
    await state.set_state(CreateAvatar.name)
    await message.answer(t("avatar.ask_name"))


async def got_name(message: Message, state: FSMContext, t: Translator) -> None:
    name = sanitize_name(message.text or "")
    if name is None:
        await message.answer(t("avatar.bad_name"))
        return
    await state.update_data(name=name)
    await state.set_state(CreateAvatar.gender)
    await message.answer(t("avatar.ask_gender", name=name), reply_markup=kb.gender(t))


async def not_a_name(message: Message, t: Translator) -> None:
    await message.answer(t("avatar.bad_name"))


async def got_gender(
    callback: CallbackQuery, callback_data: GenderCb, state: FSMContext, t: Translator
) -> None:
    await state.update_data(gender=callback_data.value.value)
    await state.set_state(CreateAvatar.training_type)
    await edit_or_send(callback, t("avatar.ask_type"), kb.training_type(t))
    await callback.answer()


async def type_info(callback: CallbackQuery, callback_data: TrainingTypeCb, t: Translator) -> None:
    value = callback_data.value.value
    await edit_or_send(
        callback,
        t(f"avatar.type_{value}_details"),
        kb.training_type_confirm(t, callback_data.value),
    )
    await callback.answer()


async def type_back(callback: CallbackQuery, t: Translator) -> None:
    await edit_or_send(callback, t("avatar.ask_type"), kb.training_type(t))
    await callback.answer()


async def type_picked(
    callback: CallbackQuery,
    callback_data: TrainingTypeCb,
    state: FSMContext,
    user: User,
    t: Translator,
    avatars: AvatarService,
) -> None:
    """Creates the avatar; the type message becomes its live photo counter."""
    data = await state.get_data()
    avatar = await avatars.create(
        user.id, data["name"], Gender(data["gender"]), callback_data.value
    )
    await state.set_state(Upload.photos)
    await state.set_data({"avatar_id": str(avatar.id)})
    intro = t(
        "photos.intro",
        type=t.plain(f"avatar.type_{avatar.training_type.value}"),
        min=avatars.min_photos,
        max=avatars.max_photos,
    )
    await edit_or_send(
        callback, intro + "\n\n" + counter_text(t, avatar, avatars.min_photos, avatars.max_photos)
    )
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
