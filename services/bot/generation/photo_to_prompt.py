"""Photo to prompt: the user sends a reference picture, the vision model describes it, and
the proposed prompt comes back (via `generation/events.py`) with Generate / Edit buttons."""

from __future__ import annotations

from dataclasses import replace

from aiogram import Bot, F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from services.bot.app.filters import Is
from services.bot.app.models import User
from services.bot.app.photo_validation import PhotoRejected, Upload, is_image_document
from services.bot.app.routing import FeatureRouter
from services.bot.app.screens import View, show, stale
from services.bot.app.texts import Translator
from services.bot.generation import keyboards as kb
from services.bot.generation.callbacks import GenCb
from services.bot.generation.describer import Describer
from services.bot.generation.draft import Generate, load_draft, save_draft
from services.bot.generation.prompts.builder import MAX_USER_PROMPT


async def ask_reference(callback: CallbackQuery, state: FSMContext, t: Translator) -> None:
    await state.set_state(Generate.describe)
    await show(callback, View(t("generate.ask_reference"), kb.back_to_source(t)))
    await callback.answer()


def _upload(message: Message) -> Upload | None:
    if message.photo:
        size = message.photo[-1]
        return Upload(file_id=size.file_id, file_unique_id=size.file_unique_id,
                      file_size=size.file_size)  # fmt: skip
    doc = message.document
    if doc is not None and is_image_document(doc.mime_type, doc.file_name):
        return Upload(file_id=doc.file_id, file_unique_id=doc.file_unique_id,
                      file_size=doc.file_size)  # fmt: skip
    return None


async def got_reference(
    message: Message, bot: Bot, state: FSMContext, user: User, t: Translator,
    describer: Describer,
) -> None:  # fmt: skip
    """Stored first, then the "looking at it" message, then the draft remembers both, and
    only then the request is queued: the answer can never arrive before we expect it."""
    draft, upload = await load_draft(state), _upload(message)
    if draft is None or upload is None:
        await message.answer(t("generate.reference_hint"))
        return
    try:
        request_id = await describer.store_reference(bot, upload)
    except PhotoRejected as exc:
        await message.answer(t(f"generate.reference.{exc.code}"))
        return
    sent = await message.answer(t("generate.describing"))
    draft = replace(draft, describe_id=request_id, describe_message_id=sent.message_id)
    await save_draft(state, draft, Generate.describing)
    await describer.request(user.id, draft.avatar_id, request_id)


async def not_a_reference(message: Message, t: Translator) -> None:
    await message.answer(t("generate.reference_hint"))


async def still_describing(message: Message, t: Translator) -> None:
    await message.answer(t("generate.describing_wait"))


async def edit_prompt(callback: CallbackQuery, state: FSMContext, t: Translator) -> None:
    """Shows the proposed prompt as copyable code and waits for the user's version."""
    draft = await load_draft(state)
    if draft is None or not draft.user_prompt:
        await stale(callback, t.plain("common.stale"))
        return
    await state.set_state(Generate.prompt)
    text = t("generate.edit_prompt", prompt=draft.user_prompt, limit=MAX_USER_PROMPT)
    await show(callback, View(text, None))
    await callback.answer()


def build() -> Router:
    router = FeatureRouter(name="describe", callbacks=(GenCb,))
    in_flow = StateFilter(Generate)
    router.callback_query.register(ask_reference, in_flow, GenCb.filter(F.action == "describe"))
    router.message.register(got_reference, StateFilter(Generate.describe), Is(F.photo | F.document))
    router.message.register(
        not_a_reference, StateFilter(Generate.describe), Is(~F.text.startswith("/"))
    )
    router.message.register(
        still_describing, StateFilter(Generate.describing), Is(~F.text.startswith("/"))
    )
    router.callback_query.register(edit_prompt, in_flow, GenCb.filter(F.action == "edit"))
    return router
