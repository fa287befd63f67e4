"""`/delete_me` (erase everything, after a confirm) and the "keep my photos" toggle."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from services.bot.app import main_menu as menu
from services.bot.app.config import BotConfig
from services.bot.app.models import AvatarStatus, User
from services.bot.app.routing import FeatureRouter
from services.bot.app.screens import edit_or_send, not_found
from services.bot.app.texts import Translator
from services.bot.avatars.details import show_details
from services.bot.avatars.service import AvatarService
from services.bot.privacy.callbacks import KeepPhotosCb, PrivacyCb
from services.bot.privacy.keyboards import erase_confirm
from services.bot.privacy.service import PrivacyService


async def cmd_delete_me(
    message: Message, user: User, t: Translator, privacy: PrivacyService
) -> None:
    """Say exactly what will go, and ask; nothing is touched before the confirm."""
    found = await privacy.summary(user.id)
    text = t("privacy.confirm", avatars=found.avatars, photos=found.photos, images=found.images)
    await message.answer(text, reply_markup=erase_confirm(t))


async def erase(
    callback: CallbackQuery, state: FSMContext, user: User, t: Translator, privacy: PrivacyService
) -> None:
    await privacy.erase(user.id)
    await state.clear()
    await callback.answer()
    await edit_or_send(callback, t("privacy.erased"))


async def abort(callback: CallbackQuery, t: Translator) -> None:
    await callback.answer()
    await edit_or_send(callback, t("privacy.aborted"), menu.main_menu(t))


async def keep_photos(
    callback: CallbackQuery, callback_data: KeepPhotosCb, user: User, t: Translator,
    config: BotConfig, avatars: AvatarService, privacy: PrivacyService,
) -> None:  # fmt: skip
    """Record the choice and redraw the details, whose button shows it."""
    stored = await privacy.set_keep_photos(user.id, callback_data.avatar_id, callback_data.keep)
    avatar = await avatars.get(user.id, callback_data.avatar_id)
    if stored is None or avatar is None:
        await not_found(callback, t)
        return
    if stored == 0 and avatar.status is AvatarStatus.COMPLETED:
        await callback.answer(t.plain("privacy.keep_gone"), show_alert=True)
    elif callback_data.keep:
        await callback.answer(t.plain("privacy.keep_set"))
    else:
        hours = f"{config.photo_retention_hours:g}"
        await callback.answer(t.plain("privacy.keep_unset", hours=hours))
    await show_details(callback, t, avatar, user)


def build() -> Router:
    router = FeatureRouter(name="privacy", callbacks=(PrivacyCb, KeepPhotosCb))
    router.message.register(cmd_delete_me, Command("delete_me"))
    router.callback_query.register(erase, PrivacyCb.filter(F.action == "erase"))
    router.callback_query.register(abort, PrivacyCb.filter(F.action == "abort"))
    router.callback_query.register(keep_photos, KeepPhotosCb.filter())
    return router
