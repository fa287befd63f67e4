"""One avatar's details screen: its text and buttons (generate, rename, keep photos, delete).

Public: besides "my avatars", privacy's "keep my photos" toggle redraws this screen in place
after recording the choice, so it lives in one module both can import.
"""

from __future__ import annotations

from aiogram.types import CallbackQuery, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.app.main_menu import MenuCb
from services.bot.app.models import Avatar, AvatarStatus, User
from services.bot.app.screens import edit_or_send
from services.bot.app.texts import Translator
from services.bot.avatars.callbacks import AvatarCb
from services.bot.generation.callbacks import GenCb
from services.bot.privacy.callbacks import keep_photos_button
from services.bot.reference.callbacks import RefCb
from services.bot.training.callbacks import TrainingCb


def details_text(t: Translator, avatar: Avatar, is_main: bool) -> str:
    return t(
        "avatars.details",
        name=avatar.name,
        status=t.plain(f"status.{avatar.status.value}"),
        type=t.plain(f"avatar.type_{avatar.training_type.value}"),
        gender=t.plain(
            f"avatar.gender_{avatar.gender.value}" if avatar.gender else "style_avatar.no_gender"
        ),
        photos=avatar.photo_count,
        main=t.plain("avatars.is_main") if is_main else "",
    )


def avatar_details(t: Translator, avatar: Avatar, is_main: bool) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    aid = avatar.id
    if avatar.status is AvatarStatus.COMPLETED:
        kb.button(
            text=t.plain("generate.with_avatar"),
            callback_data=GenCb(action="avatar", avatar_id=aid),
        )
        kb.button(text=t.plain("reference.button"), callback_data=RefCb(action="ask", id=aid))
    if avatar.status is AvatarStatus.COMPLETED and not is_main:
        kb.button(
            text=t.plain("avatars.set_main"), callback_data=AvatarCb(action="main", avatar_id=aid)
        )
    if avatar.status in (AvatarStatus.UPLOADING, AvatarStatus.READY, AvatarStatus.DRAFT):
        kb.button(
            text=t.plain("avatars.add_photos"),
            callback_data=AvatarCb(action="photos", avatar_id=aid),
        )
    if avatar.status is AvatarStatus.READY:
        kb.button(
            text=t.plain("training.start_button"),
            callback_data=TrainingCb(action="start", avatar_id=aid),
        )
    if avatar.status in (AvatarStatus.ERROR, AvatarStatus.CANCELLED):
        kb.button(
            text=t.plain("training.retry_button"),
            callback_data=TrainingCb(action="retry", avatar_id=aid),
        )
    if avatar.status is AvatarStatus.TRAINING:
        kb.button(
            text=t.plain("training.cancel_button"),
            callback_data=TrainingCb(action="cancel", avatar_id=aid),
        )
    kb.button(
        text=t.plain("avatars.rename"), callback_data=AvatarCb(action="rename", avatar_id=aid)
    )
    label, keep = keep_photos_button(t, aid, avatar.keep_photos)
    kb.button(text=label, callback_data=keep)
    if avatar.status is not AvatarStatus.TRAINING:
        kb.button(
            text=t.plain("avatars.delete"), callback_data=AvatarCb(action="delete", avatar_id=aid)
        )
    kb.button(text=t.plain("menu.back"), callback_data=MenuCb(action="avatars"))
    kb.adjust(1)
    return kb.as_markup()


async def show_details(callback: CallbackQuery, t: Translator, avatar: Avatar, user: User) -> None:
    """Put the avatar's screen in place of the pressed message, marked main if it is `user`'s."""
    is_main = user.main_avatar_id == avatar.id
    await edit_or_send(
        callback, details_text(t, avatar, is_main), avatar_details(t, avatar, is_main)
    )
