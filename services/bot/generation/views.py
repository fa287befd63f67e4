"""How the generation flow looks: each screen as (text, keyboard), from locale texts only.

Kept apart from the handlers so they stay a few lines each, and shared with the event
consumer, which edits the same progress message the confirm handler created.
"""

from __future__ import annotations

from uuid import UUID

from contracts import FailureReason
from services.bot.app.models import Avatar
from services.bot.app.screens import View
from services.bot.app.texts import Translator
from services.bot.generation import keyboards as kb
from services.bot.generation.draft import Draft
from services.bot.generation.prompts import Catalogue
from services.bot.generation.prompts.builder import choice
from services.bot.generation.service import Generation


def home(t: Translator, avatars: list[Avatar], main_id: UUID | None) -> View:
    if not avatars:
        return View(t("generate.no_avatar"), kb.no_avatar(t))
    return View(t("generate.pick_avatar"), kb.avatar_picker(t, avatars, main_id))


def who(t: Translator, draft: Draft) -> str:
    return draft.avatar_name or t.plain("generate.quick_label")


def source(t: Translator, draft: Draft, catalogue: Catalogue) -> View:
    return View(t("generate.source", who=who(t, draft)), kb.source(t, catalogue))


def category(t: Translator, catalogue: Catalogue, category_id: str) -> View:
    lines = [
        t("styles.line", title=s.title_in(t.lang), preview=s.preview_in(t.lang))
        for s in catalogue.in_category(category_id)
    ]
    title = t("styles.header", category=catalogue.category_title(category_id, t.lang))
    return View("\n".join([title, "", *lines]), kb.styles(t, catalogue, category_id))


def settings(t: Translator, draft: Draft, catalogue: Catalogue) -> View:
    key = "generate.settings_style" if draft.style_id else "generate.settings_prompt"
    text = t(
        key,
        who=who(t, draft),
        choice=choice(t, catalogue, draft.style_id, draft.user_prompt),
        aspect=draft.aspect_ratio,
        count=draft.count,
    )
    return View(text, kb.settings(t, draft))


def queued(t: Translator, generation: Generation) -> str:
    return t("generate.queued", count=generation.num_images, aspect=generation.aspect_ratio)


def running(t: Translator, generation: Generation) -> str:
    return t("generate.running", count=generation.num_images, aspect=generation.aspect_ratio)


def failed(t: Translator, generation: Generation, reason: FailureReason) -> View:
    text = t("generate.failed", reason=t.plain(f"generate.failure.{reason.value}"))
    return View(text, kb.failed(t, generation.id))


def caption(t: Translator, generation: Generation, catalogue: Catalogue) -> str:
    prompt = generation.user_prompt or generation.prompt
    return t("generate.caption", choice=choice(t, catalogue, generation.style_id, prompt))


def notes(t: Translator, withheld: int, missing: int) -> str:
    parts = [t("generate.nsfw_note", count=withheld)] if withheld else []
    if missing:
        parts.append(t("generate.missing_note", count=missing))
    return "".join("\n" + p for p in parts)


def described(t: Translator, prompt: str) -> View:
    return View(t("generate.described", prompt=prompt), kb.described(t))


def describe_failed(t: Translator, reason: FailureReason | None) -> View:
    code = (reason or FailureReason.INTERNAL).value
    text = t("generate.describe_failed", reason=t.plain(f"generate.failure.{code}"))
    return View(text, kb.back_to_source(t))
