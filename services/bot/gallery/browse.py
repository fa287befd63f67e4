"""The gallery: one message paged in place, filters, and per-picture actions (favourite,
original file, delete with confirmation), plus the zip export.

Every action looks the picture up with the caller's id first; another user's id, a deleted
picture and a made-up id all get the same "not found" and change nothing.
"""

from __future__ import annotations

import contextlib

from aiogram import Bot, F, Router
from aiogram.enums import ChatAction
from aiogram.filters import Command, CommandStart
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardMarkup, Message
from nats.errors import Error as NatsError
from nats.js.object_store import ObjectStore

from services.bot.app.models import User
from services.bot.app.routing import FeatureRouter
from services.bot.app.screens import View, chat_of, show, stale
from services.bot.app.texts import Translator
from services.bot.gallery import keyboards as kb
from services.bot.gallery import views
from services.bot.gallery.callbacks import GalleryCb, GalleryMenuCb, ImageCb
from services.bot.gallery.export import Exporter
from services.bot.gallery.image_files import as_upload, file_id_of, load, send_photo
from services.bot.gallery.service import ImageItem, ImageService
from services.bot.generation.prompts import Catalogue


async def _page(user: User, t: Translator, images: ImageService, styles: Catalogue,
                current: GalleryCb) -> View:  # fmt: skip
    page = await images.page(user.id, current.page, avatar_id=current.avatar_id,
                             favorites=current.fav)  # fmt: skip
    name = None
    if current.avatar_id is not None:
        name = dict(await images.avatars_with_images(user.id)).get(current.avatar_id)
    return views.page(t, page, current, name, styles)


async def cmd_gallery(
    message: Message, user: User, t: Translator, images: ImageService, styles: Catalogue
) -> None:
    view = await _page(user, t, images, styles, GalleryCb())
    await message.answer(view.text, reply_markup=view.markup)


async def show_page(
    callback: CallbackQuery, callback_data: GalleryCb, user: User, t: Translator,
    images: ImageService, styles: Catalogue,
) -> None:  # fmt: skip
    await show(callback, await _page(user, t, images, styles, callback_data))
    await callback.answer()


async def pick_avatar(
    callback: CallbackQuery, callback_data: GalleryMenuCb, user: User, t: Translator,
    images: ImageService,
) -> None:  # fmt: skip
    avatars = await images.avatars_with_images(user.id)
    await show(callback, views.avatar_filter(t, avatars, callback_data.fav))
    await callback.answer()


async def open_image(
    callback: CallbackQuery, callback_data: ImageCb, bot: Bot, user: User, t: Translator,
    images: ImageService, image_store: ObjectStore, styles: Catalogue,
) -> None:  # fmt: skip
    """Re-sends the picture (by file_id when Telegram has it) with its details and actions."""
    item = await images.get(user.id, callback_data.image_id)
    caption = views.details(t, item, styles) if item else ""
    chat_id = chat_of(callback, user)
    sent = (
        await send_photo(bot, chat_id, item, image_store, caption, kb.image(t, item))
        if item
        else None
    )
    if item is None or sent is None:
        await stale(callback, t.plain("gallery.not_found"))
        return
    if (file_id := file_id_of(sent)) and file_id != item.telegram_file_id:
        await images.set_file_id(user.id, item.id, file_id)
    await callback.answer()


async def toggle_favorite(
    callback: CallbackQuery, callback_data: ImageCb, user: User, t: Translator,
    images: ImageService,
) -> None:  # fmt: skip
    favorite = await images.toggle_favorite(user.id, callback_data.image_id)
    item = await images.get(user.id, callback_data.image_id)
    if favorite is None or item is None:
        await stale(callback, t.plain("gallery.not_found"))
        return
    await _set_markup(callback, kb.image(t, item))
    await callback.answer(t.plain("gallery.favorited" if favorite else "gallery.unfavorited"))


async def send_original(
    callback: CallbackQuery, callback_data: ImageCb, bot: Bot, user: User, t: Translator,
    images: ImageService, image_store: ObjectStore,
) -> None:  # fmt: skip
    """The full-quality file as a document (Telegram recompresses photos)."""
    item = await images.get(user.id, callback_data.image_id)
    data = await load(image_store, item.object_name) if item else None
    if item is None or data is None:
        await stale(callback, t.plain("gallery.not_found"))
        return
    await callback.answer()
    await bot.send_document(
        chat_of(callback, user), as_upload(item, data), caption=t("gallery.original_caption")
    )


async def ask_delete(
    callback: CallbackQuery, callback_data: ImageCb, user: User, t: Translator,
    images: ImageService,
) -> None:  # fmt: skip
    if (item := await _picture_or_gone(callback, user, t, images, callback_data)) is None:
        return
    await _set_markup(callback, kb.confirm_delete(t, item.id))
    await callback.answer(t.plain("gallery.delete_confirm"), show_alert=True)


async def keep(
    callback: CallbackQuery, callback_data: ImageCb, user: User, t: Translator,
    images: ImageService,
) -> None:  # fmt: skip
    if (item := await _picture_or_gone(callback, user, t, images, callback_data)) is None:
        return
    await _set_markup(callback, kb.image(t, item))
    await callback.answer()


async def delete(
    callback: CallbackQuery, callback_data: ImageCb, user: User, t: Translator,
    images: ImageService, image_store: ObjectStore,
) -> None:  # fmt: skip
    """The row goes first (its share links cascade), then the stored file, then the message."""
    name = await images.delete(user.id, callback_data.image_id)
    if name is None:
        await stale(callback, t.plain("gallery.not_found"))
        return
    with contextlib.suppress(NatsError):
        await image_store.delete(name)
    if isinstance(callback.message, Message):
        await callback.message.delete()
    await callback.answer(t.plain("gallery.deleted"))


async def export_zip(
    callback: CallbackQuery, callback_data: GalleryMenuCb, bot: Bot, user: User,
    t: Translator, exporter: Exporter,
) -> None:  # fmt: skip
    chat_id = chat_of(callback, user)
    await callback.answer(t.plain("gallery.export_started"))
    await bot.send_chat_action(chat_id, ChatAction.UPLOAD_DOCUMENT)
    result = await exporter.build(user.id, favorites=callback_data.fav)
    if result.data is None:
        limits = {"limit": exporter.max_images, "mb": exporter.max_bytes // 2**20}
        await bot.send_message(
            chat_id, t(f"gallery.export_{result.refused}", count=result.count, **limits)
        )
        return
    name = "aisha-favourites.zip" if callback_data.fav else "aisha-gallery.zip"
    caption = t("gallery.export_done", count=result.count)
    await bot.send_document(chat_id, BufferedInputFile(result.data, filename=name), caption=caption)


async def _set_markup(callback: CallbackQuery, markup: InlineKeyboardMarkup) -> None:
    if isinstance(callback.message, Message):
        await callback.message.edit_reply_markup(reply_markup=markup)


def build() -> Router:
    router = FeatureRouter(name="gallery", callbacks=(GalleryCb, GalleryMenuCb, ImageCb))
    cb = router.callback_query
    router.message.register(cmd_gallery, Command("gallery"))
    router.message.register(cmd_gallery, CommandStart(deep_link=True, magic=F.args == "gallery"))
    cb.register(show_page, GalleryCb.filter())
    cb.register(pick_avatar, GalleryMenuCb.filter(F.action == "avatars"))
    cb.register(export_zip, GalleryMenuCb.filter(F.action == "zip"))
    cb.register(open_image, ImageCb.filter(F.action == "open"))
    cb.register(toggle_favorite, ImageCb.filter(F.action == "fav"))
    cb.register(send_original, ImageCb.filter(F.action == "doc"))
    cb.register(ask_delete, ImageCb.filter(F.action == "del"))
    cb.register(keep, ImageCb.filter(F.action == "del_no"))
    cb.register(delete, ImageCb.filter(F.action == "del_yes"))
    return router


async def _picture_or_gone(
    callback: CallbackQuery, user: User, t: Translator, images: ImageService, data: ImageCb
) -> ImageItem | None:
    """The pressed picture if it is still the presser's; else the "not found" alert."""
    item = await images.get(user.id, data.image_id)
    if item is None:
        await stale(callback, t.plain("gallery.not_found"))
    return item
