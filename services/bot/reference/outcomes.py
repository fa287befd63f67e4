"""How a reference job looks while it runs and when it ends; the generation consumer calls
this for rows that are references (`generation.kind == "reference"`), so the job shares the
whole pipeline (charge, submission, tracking, storage, refunds) and only its face differs.

The result is one photo (kept in the gallery like any picture, its file_id remembered); a
picture FAL's safety checker flagged is never sent: the user is told it was withheld, and
the consumer has refunded the job whole (`refunded`).
"""

from __future__ import annotations

from uuid import UUID

from aiogram.methods import SendPhoto
from nats.js.object_store import ObjectStore

from contracts import FailureReason, GeneratedImage
from services.bot.app.screens import View
from services.bot.app.sender import Sender
from services.bot.app.texts import Translator
from services.bot.gallery.image_files import as_upload, file_id_of, load
from services.bot.gallery.service import ImageService
from services.bot.generation.service import Generation
from services.bot.reference import keyboards as kb
from services.bot.reference.strengths import step_of


class ReferenceOutcomes:
    def __init__(self, images: ImageService, store: ObjectStore, sender: Sender):
        self.images = images
        self.store = store
        self.sender = sender

    def running(self, t: Translator, generation: Generation) -> str:
        return t("reference.running", strength=_strength(t, generation))

    async def failed(self, t: Translator, generation: Generation, reason: FailureReason) -> View:
        return View(t(f"reference.failure.{reason.value}"), kb.result(t, generation.reference_id))

    async def deliver(
        self,
        generation: Generation,
        results: tuple[GeneratedImage, ...],
        t: Translator,
        refunded: int = 0,
    ) -> dict[UUID, str]:
        """The picture as a photo, or why there is none (the caller then deletes the progress
        message)."""
        chat_id = generation.progress_chat_id or generation.user_id
        markup = kb.result(t, generation.reference_id)
        rows = {item.object_name: item for item in await self.images.of_generation(generation.id)}
        shown = [
            rows[r.object_name]
            for r in results
            if r.object_name in rows and not (r.nsfw or rows[r.object_name].nsfw)
        ]
        data = await load(self.store, shown[0].object_name) if shown else None
        file_ids: dict[UUID, str] = {}
        if shown and data is not None:
            caption = t("reference.done", strength=_strength(t, generation))
            photo = SendPhoto(chat_id=chat_id, photo=as_upload(shown[0], data), caption=caption,
                              reply_markup=markup)  # fmt: skip
            message = await self.sender.call(chat_id, photo)
            if message is not None and (file_id := file_id_of(message)):
                file_ids[shown[0].id] = file_id
        else:
            withheld = any(r.nsfw for r in results) or any(i.nsfw for i in rows.values())
            text = t("reference.withheld" if withheld else "reference.nothing")
            if refunded:
                text += "\n\n" + t("credits.refunded_nsfw", credits=refunded)
            await self.sender.send(chat_id, text, markup)
        return file_ids


def _strength(t: Translator, generation: Generation) -> str:
    return t.plain(f"reference.name_{step_of(generation.reference_strength)}")
