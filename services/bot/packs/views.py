"""How the packs look: each screen as (text, keyboard), from locale texts only."""

from __future__ import annotations

from services.bot.app.main_menu import back_to_menu
from services.bot.app.models import Avatar
from services.bot.app.screens import View
from services.bot.app.texts import Translator
from services.bot.packs import keyboards as kb
from services.bot.packs.catalogue import Pack, PackCatalogue


def pack_list(t: Translator, packs: PackCatalogue, per_image: int, balance: int) -> View:
    lines = [
        t("packs.list_line", title=p.title_in(t.lang), description=p.description_in(t.lang))
        for p in packs
    ]
    text = "\n".join([t("packs.list_header", balance=balance), "", *lines])
    return View(text, kb.pack_list(t, packs, per_image))


def no_avatar(t: Translator) -> View:
    return View(t("packs.no_avatar"), back_to_menu(t))


def card(t: Translator, pack: Pack, avatars: list[Avatar], per_image: int, balance: int) -> View:
    styles = ", ".join(style.title_in(t.lang) for style in pack.styles)
    text = t(
        "packs.card",
        title=pack.title_in(t.lang),
        description=pack.description_in(t.lang),
        styles=styles,
        count=pack.pictures,
        per_image=per_image,
        price=pack.price(per_image),
        balance=balance,
    )
    return View(text, kb.card(t, pack, avatars, per_image))


def ordered(t: Translator, pack: Pack, avatar: Avatar, price: int) -> str:
    return t(
        "packs.ordered",
        count=pack.pictures,
        title=pack.title_in(t.lang),
        name=avatar.name,
        price=price,
    )
