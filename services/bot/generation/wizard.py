"""Generating pictures: avatar → style or own prompt → format and count → confirm; and the
"again" / "more like this" buttons under delivered results.

The draft lives in FSM data; buttons that need it are registered for `Generate` states only,
so a button from a finished or abandoned flow falls through to the "outdated" answer.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from services.bot.app.filters import Is
from services.bot.app.models import AvatarStatus, User
from services.bot.app.routing import FeatureRouter
from services.bot.app.screens import View, show, stale
from services.bot.app.texts import Translator
from services.bot.avatars.service import AvatarService
from services.bot.credits.callbacks import not_enough_credits, top_up
from services.bot.generation import views
from services.bot.generation.callbacks import (
    GenAspectCb,
    GenCategoryCb,
    GenCb,
    GenCountCb,
    GenRunCb,
    GenStyleCb,
)
from services.bot.generation.draft import Draft, Generate, compose, load_draft, save_draft
from services.bot.generation.prompts import Catalogue, PromptRejected
from services.bot.generation.prompts.builder import MAX_USER_PROMPT, user_text
from services.bot.generation.service import GenerationRefused, GenerationService, GenerationSpec
from services.kit.credits import InsufficientCredits

IN_FLOW = StateFilter(Generate)


async def _home(user: User, t: Translator, avatars: AvatarService) -> View:
    ready = [a for a in await avatars.list_for(user.id) if a.status is AvatarStatus.COMPLETED]
    return views.home(t, ready, user.main_avatar_id)


async def cmd_generate(
    message: Message, state: FSMContext, user: User, t: Translator, avatars: AvatarService
) -> None:
    await state.clear()
    view = await _home(user, t, avatars)
    await message.answer(view.text, reply_markup=view.markup)


async def open_home(
    callback: CallbackQuery, state: FSMContext, user: User, t: Translator, avatars: AvatarService
) -> None:
    await state.clear()
    await show(callback, await _home(user, t, avatars))
    await callback.answer()


async def pick_avatar(
    callback: CallbackQuery, callback_data: GenCb, state: FSMContext, user: User,
    t: Translator, avatars: AvatarService, styles: Catalogue,
) -> None:  # fmt: skip
    avatar_id = callback_data.avatar_id
    avatar = await avatars.get(user.id, avatar_id) if avatar_id else None
    if avatar is None or avatar.status is not AvatarStatus.COMPLETED:
        await stale(callback, t.plain("generate.avatar_not_ready"))
        return
    await _to_source(
        callback, state, t, styles, Draft(avatar_id=avatar.id, avatar_name=avatar.name)
    )


async def quick(
    callback: CallbackQuery, state: FSMContext, t: Translator, styles: Catalogue
) -> None:
    await _to_source(callback, state, t, styles, Draft(avatar_id=None))


async def back_to_source(
    callback: CallbackQuery, state: FSMContext, t: Translator, styles: Catalogue
) -> None:
    draft = await load_draft(state)
    if draft is None:
        await stale(callback, t.plain("common.stale"))
        return
    await _to_source(callback, state, t, styles, draft)


async def _to_source(
    callback: CallbackQuery, state: FSMContext, t: Translator, styles: Catalogue, draft: Draft
) -> None:
    await save_draft(state, draft, Generate.source)
    await show(callback, views.source(t, draft, styles))
    await callback.answer()


async def show_category(
    callback: CallbackQuery, callback_data: GenCategoryCb, t: Translator, styles: Catalogue
) -> None:
    if not styles.in_category(callback_data.category):
        await stale(callback, t.plain("common.stale"))
        return
    await show(callback, views.category(t, styles, callback_data.category))
    await callback.answer()


async def pick_style(
    callback: CallbackQuery, callback_data: GenStyleCb, state: FSMContext, t: Translator,
    styles: Catalogue,
) -> None:  # fmt: skip
    draft, style = await load_draft(state), styles.get(callback_data.style_id)
    if draft is None or style is None:
        await stale(callback, t.plain("common.stale"))
        return
    await _to_settings(callback, state, t, styles, draft.with_style(style.id))


async def ask_prompt(callback: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await state.set_state(Generate.prompt)
    await show(callback, View(t("generate.ask_prompt", limit=MAX_USER_PROMPT), None))
    await callback.answer()


async def got_prompt(message: Message, state: FSMContext, t: Translator, styles: Catalogue) -> None:
    """Typed text becomes the prompt; too long or empty gets the limit named, and the
    user stays here to send another."""
    draft = await load_draft(state)
    try:
        text = user_text(message.text or "")
    except PromptRejected as exc:
        await message.answer(
            t(f"generate.prompt_{exc.code}", length=exc.length, limit=MAX_USER_PROMPT)
        )
        return
    if draft is None:
        await state.clear()
        await message.answer(t("common.stale"))
        return
    draft = draft.with_prompt(text)
    await save_draft(state, draft, Generate.settings)
    view = views.settings(t, draft, styles)
    await message.answer(view.text, reply_markup=view.markup)


async def not_a_prompt(message: Message, t: Translator) -> None:
    await message.answer(t("generate.prompt_hint", limit=MAX_USER_PROMPT))


async def show_settings(
    callback: CallbackQuery, state: FSMContext, t: Translator, styles: Catalogue
) -> None:
    draft = await load_draft(state)
    if draft is None or not draft.ready:
        await stale(callback, t.plain("common.stale"))
        return
    await _to_settings(callback, state, t, styles, draft)


async def set_format(
    callback: CallbackQuery, callback_data: GenAspectCb | GenCountCb, state: FSMContext,
    t: Translator, styles: Catalogue,
) -> None:  # fmt: skip
    """The settings screen's aspect and count buttons: change that one value of the draft."""
    draft = await load_draft(state)
    if draft is None:
        await stale(callback, t.plain("common.stale"))
        return
    if isinstance(callback_data, GenAspectCb):
        draft = draft.with_format(aspect=callback_data.aspect)
    else:
        draft = draft.with_format(count=callback_data.count)
    await _to_settings(callback, state, t, styles, draft)


async def _to_settings(
    callback: CallbackQuery, state: FSMContext, t: Translator, styles: Catalogue, draft: Draft
) -> None:
    await save_draft(state, draft, Generate.settings)
    await show(callback, views.settings(t, draft, styles))
    await callback.answer()


async def confirm(
    callback: CallbackQuery, state: FSMContext, user: User, t: Translator,
    avatars: AvatarService, generations: GenerationService, styles: Catalogue,
) -> None:  # fmt: skip
    """The settings message becomes the generation's progress message."""
    draft, message = await load_draft(state), callback.message
    spec = await compose(draft, user.id, avatars, styles) if draft else None
    if spec is None or not isinstance(message, Message):
        await stale(callback, t.plain("generate.avatar_not_ready" if draft else "common.stale"))
        return
    try:
        generation = await generations.create(user.id, spec, message.chat.id, message.message_id)
    except GenerationRefused as exc:
        await stale(callback, t.plain(f"generate.refused_{exc.code}", limit=generations.max_active))
        return
    except InsufficientCredits as exc:
        await not_enough_credits(callback, t, exc)
        return
    await state.clear()
    await message.edit_text(views.queued(t, generation))
    await callback.answer(t.plain("generate.started"))


async def follow_up(
    callback: CallbackQuery, callback_data: GenRunCb, user: User, t: Translator,
    generations: GenerationService,
) -> None:  # fmt: skip
    """Again / more like this, under results: a new generation with its own progress
    message below (the results stay as they are)."""
    spec = await generations.follow_up(user.id, callback_data.generation_id, callback_data.action)
    if spec is None:
        await stale(callback, t.plain("generate.not_found"))
        return
    if await generations.active_count(user.id) >= generations.max_active:
        await stale(callback, t.plain("generate.refused_limit", limit=generations.max_active))
        return
    await _start_follow_up(callback, user, t, generations, spec)


async def _start_follow_up(
    callback: CallbackQuery, user: User, t: Translator, generations: GenerationService,
    spec: GenerationSpec,
) -> None:  # fmt: skip
    assert callback.bot is not None
    chat_id = callback.message.chat.id if callback.message else user.id
    sent = await callback.bot.send_message(chat_id, t("generate.preparing"))
    try:
        generation = await generations.create(user.id, spec, chat_id, sent.message_id)
    except GenerationRefused as exc:
        await sent.edit_text(t(f"generate.refused_{exc.code}", limit=generations.max_active))
        await callback.answer()
        return
    except InsufficientCredits as exc:
        await sent.edit_text(
            t("credits.not_enough", price=exc.needed, balance=exc.balance), reply_markup=top_up(t)
        )
        await callback.answer()
        return
    await sent.edit_text(views.queued(t, generation))
    await callback.answer(t.plain("generate.started"))


def build() -> Router:
    router = FeatureRouter(
        name="generate",
        callbacks=(GenCb, GenCategoryCb, GenStyleCb, GenAspectCb, GenCountCb, GenRunCb),
    )
    cb = router.callback_query
    router.message.register(cmd_generate, Command("generate"))
    cb.register(open_home, GenCb.filter(F.action == "home"))
    cb.register(pick_avatar, GenCb.filter(F.action == "avatar"))
    cb.register(quick, GenCb.filter(F.action == "quick"))
    cb.register(back_to_source, IN_FLOW, GenCb.filter(F.action == "src"))
    cb.register(show_category, IN_FLOW, GenCategoryCb.filter())
    cb.register(pick_style, IN_FLOW, GenStyleCb.filter())
    cb.register(ask_prompt, IN_FLOW, GenCb.filter(F.action == "own"))
    router.message.register(
        got_prompt, StateFilter(Generate.prompt), Is(F.text), Is(~F.text.startswith("/"))
    )
    router.message.register(not_a_prompt, StateFilter(Generate.prompt), Is(~F.text.startswith("/")))
    cb.register(show_settings, IN_FLOW, GenCb.filter(F.action == "cfg"))
    cb.register(set_format, StateFilter(Generate.settings), GenAspectCb.filter())
    cb.register(set_format, StateFilter(Generate.settings), GenCountCb.filter())
    cb.register(confirm, StateFilter(Generate.settings), GenCb.filter(F.action == "go"))
    cb.register(follow_up, GenRunCb.filter())
    return router
