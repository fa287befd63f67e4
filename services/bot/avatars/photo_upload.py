"""Training photos: single photos, albums and image documents while an avatar collects them."""

from __future__ import annotations

from uuid import UUID

from aiogram import Bot, F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import Message

from services.bot.app import main_menu as menu
from services.bot.app.filters import Is
from services.bot.app.photo_validation import Upload, is_image_document
from services.bot.app.routing import FeatureRouter
from services.bot.app.texts import Translator
from services.bot.avatars.photo_intake import PhotoIntake
from services.bot.avatars.states import Upload as UploadState


async def _avatar_id(state: FSMContext) -> UUID:
    return UUID((await state.get_data())["avatar_id"])


async def got_photo(
    message: Message, bot: Bot, state: FSMContext, t: Translator, intake: PhotoIntake
) -> None:
    """Telegram sends several sizes of a photo; the last one is the original's."""
    assert message.photo
    assert message.from_user
    size = message.photo[-1]
    upload = Upload(
        file_id=size.file_id, file_unique_id=size.file_unique_id, file_size=size.file_size
    )
    await intake.receive(
        bot,
        message.chat.id,
        message.from_user.id,
        await _avatar_id(state),
        t,
        upload,
        message.message_id,
    )


async def got_document(
    message: Message, bot: Bot, state: FSMContext, t: Translator, intake: PhotoIntake
) -> None:
    """Photos sent "as file" keep full quality; anything that is not an image is refused."""
    assert message.document
    assert message.from_user
    doc, avatar_id = message.document, await _avatar_id(state)
    if not is_image_document(doc.mime_type, doc.file_name):
        intake.reject(
            message.chat.id, message.from_user.id, avatar_id, t, "not_image", message.message_id
        )
        return
    upload = Upload(file_id=doc.file_id, file_unique_id=doc.file_unique_id, file_size=doc.file_size)
    await intake.receive(
        bot, message.chat.id, message.from_user.id, avatar_id, t, upload, message.message_id
    )


async def other_content(message: Message, t: Translator) -> None:
    await message.answer(t("photos.hint"))


async def photo_without_avatar(message: Message, t: Translator) -> None:
    await message.answer(t("photos.no_avatar"), reply_markup=menu.main_menu(t))


def build() -> Router:
    router = FeatureRouter(name="photos")
    router.message.register(got_photo, StateFilter(UploadState.photos), Is(F.photo))
    router.message.register(got_document, StateFilter(UploadState.photos), Is(F.document))
    router.message.register(other_content, StateFilter(UploadState.photos))
    router.message.register(photo_without_avatar, Is(F.photo | F.document))
    return router
