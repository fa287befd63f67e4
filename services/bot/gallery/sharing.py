"""Sharing one picture by a revocable deep link, `/start share_<token>`.

The token is 128 random bits (`secrets.token_urlsafe(16)`), so links cannot be guessed;
whoever holds one sees the picture with a neutral caption and nothing about its owner.
Revoking makes the link answer exactly like a made-up one.
"""

from __future__ import annotations

import re

from aiogram import Bot, F, Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import CallbackQuery, Message
from nats.js.object_store import ObjectStore

from services.bot.app import main_menu as menu
from services.bot.app.models import User
from services.bot.app.routing import FeatureRouter
from services.bot.app.screens import View, chat_of, show, stale
from services.bot.app.texts import Translator
from services.bot.gallery import keyboards as kb
from services.bot.gallery.callbacks import ImageCb
from services.bot.gallery.image_files import send_photo
from services.bot.gallery.service import ImageService

PREFIX = "share_"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


async def open_shared(
    message: Message, command: CommandObject, bot: Bot, t: Translator, images: ImageService,
    image_store: ObjectStore,
) -> None:  # fmt: skip
    token = (command.args or "").removeprefix(PREFIX)
    item = await images.shared(token) if TOKEN.match(token) else None
    sent = None
    if item is not None:
        sent = await send_photo(
            bot, message.chat.id, item, image_store, t("share.caption"), kb.join(t)
        )
    if sent is None:
        await message.answer(t("share.unknown"), reply_markup=menu.main_menu(t))


async def create_link(
    callback: CallbackQuery, callback_data: ImageCb, bot: Bot, user: User, t: Translator,
    images: ImageService,
) -> None:  # fmt: skip
    token = await images.share(user.id, callback_data.image_id)
    if token is None:
        await stale(callback, t.plain("gallery.not_found"))
        return
    link = f"https://t.me/{(await bot.me()).username}?start={PREFIX}{token}"
    await bot.send_message(
        chat_of(callback, user),
        t("share.created", link=link),
        reply_markup=kb.shared(t, callback_data.image_id),
    )
    await callback.answer()


async def revoke(
    callback: CallbackQuery, callback_data: ImageCb, user: User, t: Translator,
    images: ImageService,
) -> None:  # fmt: skip
    revoked = await images.revoke(user.id, callback_data.image_id)
    if revoked is None:
        await stale(callback, t.plain("gallery.not_found"))
        return
    if revoked == 0:
        await callback.answer(t.plain("share.none_active"))
        return
    await show(callback, View(t("share.revoked"), None))
    await callback.answer(t.plain("share.revoked_toast"))


def build() -> Router:
    router = FeatureRouter(name="share", callbacks=(ImageCb,))
    router.message.register(
        open_shared, CommandStart(deep_link=True, magic=F.args.startswith(PREFIX))
    )
    router.callback_query.register(create_link, ImageCb.filter(F.action == "share"))
    router.callback_query.register(revoke, ImageCb.filter(F.action == "unshare"))
    return router
