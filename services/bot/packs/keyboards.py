"""The packs' keyboards: the list (one button per pack with its price), a card (one order
button per ready avatar, naming the total) and the way back."""

from __future__ import annotations

import secrets

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from services.bot.app.main_menu import MenuCb
from services.bot.app.models import Avatar
from services.bot.app.texts import Translator
from services.bot.packs.callbacks import PackCb, PackGoCb
from services.bot.packs.catalogue import Pack, PackCatalogue


def pack_list(t: Translator, packs: PackCatalogue, per_image: int) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for pack in packs:
        label = t.plain(
            "packs.list_button",
            title=pack.title_in(t.lang),
            count=pack.pictures,
            price=pack.price(per_image),
        )
        kb.button(text=label, callback_data=PackCb(action="show", pack_id=pack.id))
    kb.button(text=t.plain("menu.back"), callback_data=MenuCb(action="main"))
    kb.adjust(1)
    return kb.as_markup()


def card(t: Translator, pack: Pack, avatars: list[Avatar], per_image: int) -> InlineKeyboardMarkup:
    """A fresh nonce per card: every press of this card is the same order."""
    nonce = secrets.token_hex(4)
    kb = InlineKeyboardBuilder()
    for avatar in avatars:
        label = t.plain("packs.go_button", name=avatar.name, price=pack.price(per_image))
        data = PackGoCb(pack_id=pack.id, avatar=avatar.id.hex, nonce=nonce)
        kb.button(text=label, callback_data=data)
    kb.button(text=t.plain("packs.back"), callback_data=PackCb(action="list"))
    kb.adjust(1)
    return kb.as_markup()
