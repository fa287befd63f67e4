"""Keyboards of the gallery, image actions, export and sharing (data in `callbacks.py`)."""

from __future__ import annotations

from uuid import UUID

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.animate.callbacks import AnimateCb
from services.bot.app.keyboards import keyboard
from services.bot.app.main_menu import MenuCb
from services.bot.app.texts import Translator
from services.bot.gallery.callbacks import GalleryCb, GalleryMenuCb, ImageCb
from services.bot.gallery.service import ImageItem, Page
from services.bot.generation.callbacks import GenCb
from services.bot.upscale.callbacks import UpscaleCb


def page(t: Translator, view: Page, current: GalleryCb, avatar_label: str) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for number, item in enumerate(view.items, start=view.first):
        star = "⭐" if item.is_favorite else ""
        kb.button(text=f"{number}{star}", callback_data=ImageCb(action="open", image_id=item.id))
    nav = []
    if view.page > 0:
        kb.button(text="◀️", callback_data=GalleryCb(page=view.page - 1, fav=current.fav,
                                                     avatar_id=current.avatar_id))  # fmt: skip
        nav.append(1)
    if view.page < view.pages - 1:
        kb.button(text="▶️", callback_data=GalleryCb(page=view.page + 1, fav=current.fav,
                                                     avatar_id=current.avatar_id))  # fmt: skip
        nav.append(1)
    kb.button(text=avatar_label, callback_data=GalleryMenuCb(action="avatars", fav=current.fav))
    kb.button(
        text=t.plain("gallery.show_all" if current.fav else "gallery.show_favorites"),
        callback_data=GalleryCb(page=0, fav=not current.fav, avatar_id=current.avatar_id),
    )
    kb.button(
        text=t.plain("gallery.export_favorites" if current.fav else "gallery.export_all"),
        callback_data=GalleryMenuCb(action="zip", fav=current.fav),
    )
    kb.button(text=t.plain("menu.back"), callback_data=MenuCb(action="main"))
    kb.adjust(*([len(view.items)] if view.items else []), *([len(nav)] if nav else []), 2, 1, 1)
    return kb.as_markup()


def empty(t: Translator, current: GalleryCb) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    if current.fav or current.avatar_id is not None:
        kb.button(text=t.plain("gallery.show_everything"), callback_data=GalleryCb())
    kb.button(text=t.plain("generate.menu_button"), callback_data=GenCb(action="home"))
    kb.button(text=t.plain("menu.back"), callback_data=MenuCb(action="main"))
    kb.adjust(1)
    return kb.as_markup()


def avatar_filter(
    t: Translator, avatars: list[tuple[UUID, str]], fav: bool
) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    kb.button(text=t.plain("gallery.all_avatars"), callback_data=GalleryCb(fav=fav))
    for avatar_id, name in avatars:
        kb.button(text=name, callback_data=GalleryCb(fav=fav, avatar_id=avatar_id))
    kb.adjust(1)
    return kb.as_markup()


def image(t: Translator, item: ImageItem) -> InlineKeyboardMarkup:
    """Under an opened picture: favourite toggle, original file, share, delete, upscale,
    animate (a video has the first four)."""
    kb = InlineKeyboardBuilder()
    iid = item.id
    fav = "gallery.unfavorite" if item.is_favorite else "gallery.favorite"
    kb.button(text=t.plain(fav), callback_data=ImageCb(action="fav", image_id=iid))
    kb.button(text=t.plain("gallery.original"), callback_data=ImageCb(action="doc", image_id=iid))
    kb.button(text=t.plain("share.button"), callback_data=ImageCb(action="share", image_id=iid))
    kb.button(text=t.plain("gallery.delete"), callback_data=ImageCb(action="del", image_id=iid))
    if item.is_video:  # a clip is neither upscaled nor animated again
        kb.adjust(2, 2)
        return kb.as_markup()
    kb.button(text=t.plain("upscale.button"), callback_data=UpscaleCb(action="menu", image_id=iid))
    kb.button(text=t.plain("animate.button"), callback_data=AnimateCb(action="menu", image_id=iid))
    kb.adjust(2, 2, 2)
    return kb.as_markup()


def confirm_delete(t: Translator, image_id: UUID) -> InlineKeyboardMarkup:
    return keyboard(
        t,
        ("gallery.delete_yes", ImageCb(action="del_yes", image_id=image_id)),
        ("gallery.delete_no", ImageCb(action="del_no", image_id=image_id)),
        rows=(2,),
    )


def shared(t: Translator, image_id: UUID) -> InlineKeyboardMarkup:
    return keyboard(t, ("share.revoke_button", ImageCb(action="unshare", image_id=image_id)))


def join(t: Translator) -> InlineKeyboardMarkup:
    """Under a picture opened from someone's link: an invitation, nothing about the owner."""
    return keyboard(t, ("share.try_button", MenuCb(action="main")))
