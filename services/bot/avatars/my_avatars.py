"""My avatars: list, details, rename, delete (photos too), set as main, add more photos."""

from __future__ import annotations

import contextlib
from uuid import UUID

from aiogram import F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from nats.errors import Error as NatsError
from nats.js.object_store import ObjectStore

from services.bot.app import main_menu as menu
from services.bot.app.filters import Is
from services.bot.app.main_menu import MenuCb
from services.bot.app.models import User
from services.bot.app.names import sanitize_name
from services.bot.app.routing import FeatureRouter
from services.bot.app.screens import edit_or_send, not_found
from services.bot.app.texts import Translator
from services.bot.avatars import keyboards as kb
from services.bot.avatars.callbacks import AvatarCb
from services.bot.avatars.details import show_details
from services.bot.avatars.photo_intake import PhotoIntake
from services.bot.avatars.service import AvatarService
from services.bot.avatars.states import Rename, Upload


async def show_list(
    callback: CallbackQuery, state: FSMContext, user: User, t: Translator, avatars: AvatarService
) -> None:
    await state.clear()
    items = await avatars.list_for(user.id)
    text = t("avatars.title") if items else t("avatars.empty")
    await edit_or_send(callback, text, kb.avatar_list(t, items))
    await callback.answer()


async def show(
    callback: CallbackQuery,
    callback_data: AvatarCb,
    user: User,
    t: Translator,
    avatars: AvatarService,
) -> None:
    avatar = await avatars.get(user.id, callback_data.avatar_id)
    if avatar is None:
        await not_found(callback, t)
        return
    await show_details(callback, t, avatar, user)
    await callback.answer()


async def ask_rename(
    callback: CallbackQuery, callback_data: AvatarCb, state: FSMContext, user: User,
    t: Translator, avatars: AvatarService,
) -> None:  # fmt: skip
    if await avatars.get(user.id, callback_data.avatar_id) is None:
        await not_found(callback, t)
        return
    await state.set_state(Rename.name)
    await state.set_data({"avatar_id": str(callback_data.avatar_id)})
    await edit_or_send(callback, t("avatars.ask_rename"))
    await callback.answer()


async def got_new_name(
    message: Message, state: FSMContext, user: User, t: Translator, avatars: AvatarService
) -> None:
    name = sanitize_name(message.text or "")
    if name is None:
        await message.answer(t("avatar.bad_name"))
        return
    avatar_id = (await state.get_data())["avatar_id"]
    await state.clear()
    renamed = await avatars.rename(user.id, UUID(avatar_id), name)
    await message.answer(
        t("avatars.renamed" if renamed else "common.not_found_text", name=name),
        reply_markup=menu.main_menu(t),
    )


async def ask_delete(
    callback: CallbackQuery,
    callback_data: AvatarCb,
    user: User,
    t: Translator,
    avatars: AvatarService,
) -> None:
    avatar = await avatars.get(user.id, callback_data.avatar_id)
    if avatar is None:
        await not_found(callback, t)
        return
    await edit_or_send(
        callback, t("avatars.delete_confirm", name=avatar.name), kb.delete_confirm(t, avatar.id)
    )
    await callback.answer()


async def delete(
    callback: CallbackQuery, callback_data: AvatarCb, user: User, t: Translator,
    avatars: AvatarService, photo_store: ObjectStore, image_store: ObjectStore,
) -> None:  # fmt: skip
    """The row goes first (its photos' rows cascade), then the stored files: the photos
    and our copy of the LoRA (a crash in between leaves orphans the retention sweep finds)."""
    deleted = await avatars.delete(user.id, callback_data.avatar_id)
    if deleted is None:
        await not_found(callback, t)
        return
    photos, lora = deleted
    for store, names in ((photo_store, photos), (image_store, lora)):
        for name in names:
            with contextlib.suppress(NatsError):
                await store.delete(name)
    await edit_or_send(callback, t("avatars.deleted"), menu.back_to_menu(t))
    await callback.answer()


async def set_main(
    callback: CallbackQuery,
    callback_data: AvatarCb,
    user: User,
    t: Translator,
    avatars: AvatarService,
) -> None:
    if not await avatars.set_main(user.id, callback_data.avatar_id):
        await not_found(callback, t)
        return
    await callback.answer(t.plain("avatars.main_set"))
    await edit_or_send(callback, t("avatars.main_set_text"), menu.main_menu(t))


async def add_photos(
    callback: CallbackQuery, callback_data: AvatarCb, state: FSMContext, user: User,
    t: Translator, avatars: AvatarService, intake: PhotoIntake,
) -> None:  # fmt: skip
    avatar = await avatars.get(user.id, callback_data.avatar_id)
    if avatar is None or callback.message is None:
        await not_found(callback, t)
        return
    await state.set_state(Upload.photos)
    await state.set_data({"avatar_id": str(avatar.id)})
    await callback.answer()
    await intake.show_counter(callback.message.chat.id, avatar, t, move=True)


def build() -> Router:
    router = FeatureRouter(name="avatars", callbacks=(MenuCb, AvatarCb))
    router.callback_query.register(show_list, MenuCb.filter(F.action == "avatars"))
    router.callback_query.register(show, AvatarCb.filter(F.action == "view"))
    router.callback_query.register(ask_rename, AvatarCb.filter(F.action == "rename"))
    router.message.register(got_new_name, StateFilter(Rename.name), Is(F.text))
    router.callback_query.register(ask_delete, AvatarCb.filter(F.action == "delete"))
    router.callback_query.register(delete, AvatarCb.filter(F.action == "delete_yes"))
    router.callback_query.register(set_main, AvatarCb.filter(F.action == "main"))
    router.callback_query.register(add_photos, AvatarCb.filter(F.action == "photos"))
    return router
