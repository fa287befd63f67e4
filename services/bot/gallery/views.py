"""How the gallery looks: the page message, the filter picker and a picture's details."""

from __future__ import annotations

from uuid import UUID

from services.bot.app.screens import View
from services.bot.app.texts import Translator
from services.bot.avatars.likeness_texts import line
from services.bot.gallery import keyboards as kb
from services.bot.gallery.callbacks import GalleryCb
from services.bot.gallery.service import ImageItem, Page
from services.bot.generation.prompts import Catalogue
from services.bot.generation.prompts.builder import choice, truncate

#: Telegram allows 1024 characters in a caption; the prompt gets what the rest leaves.
CAPTION_PROMPT = 600
DATE = "%d.%m.%Y %H:%M"


def page(
    t: Translator, view: Page, current: GalleryCb, avatar_name: str | None, styles: Catalogue
) -> View:
    avatar_label = avatar_name or t.plain("gallery.all_avatars")
    if not view.items:
        key = "gallery.empty_filtered" if current.fav or current.avatar_id else "gallery.empty"
        return View(t(key), kb.empty(t, current))
    lines = [
        t(
            "gallery.item",
            number=number,
            date=item.created_at.strftime(DATE),
            title=_mark(t, item)
            + choice(t, styles, item.style_id, item.user_prompt or item.prompt),
            star=" ⭐" if item.is_favorite else "",
        )
        for number, item in enumerate(view.items, start=view.first)
    ]
    header = t(
        "gallery.header",
        page=view.page + 1,
        pages=view.pages,
        total=view.total,
        filter=t.plain("gallery.filter_favorites" if current.fav else "gallery.filter_all"),
        avatar=avatar_label,
    )
    markup = kb.page(t, view, current, t.plain("gallery.avatar_button", name=avatar_label))
    return View("\n".join([header, "", *lines]), markup)


def avatar_filter(t: Translator, avatars: list[tuple[UUID, str]], fav: bool) -> View:
    return View(t("gallery.pick_avatar"), kb.avatar_filter(t, avatars, fav))


def details(t: Translator, item: ImageItem, styles: Catalogue) -> str:
    """Caption of an opened picture: prompt, style, seed, size, date (and the avatar), and
    its likeness to the avatar's person when it was scored."""
    style = styles.get(item.style_id)
    prompt = truncate(item.prompt, CAPTION_PROMPT)
    size = f"{item.width}×{item.height}" if item.width and item.height else item.aspect_ratio
    text = t(
        "gallery.details",
        prompt=prompt + ("…" if len(prompt) < len(item.prompt) else ""),
        style=style.title_in(t.lang) if style else t.plain("gallery.own_prompt"),
        seed=item.seed,
        size=size,
        aspect=item.aspect_ratio,
        avatar=item.avatar_name or t.plain("generate.quick_label"),
        date=item.created_at.strftime(DATE),
    )
    likeness = line(t, item.likeness)
    return text + ("\n" + likeness if likeness else "")


def _mark(t: Translator, item: ImageItem) -> str:
    """ "⬆️×2 " before an upscale, "🎬 5 s " before a video; each sits right after the
    picture it comes from."""
    if item.animation_seconds is not None:
        return t.plain("animate.gallery_mark", seconds=item.animation_seconds)
    if item.upscale_factor is None:
        return ""
    return t.plain("upscale.gallery_mark", factor=item.upscale_factor)
