"""How an upscale looks while it runs and when it ends; the generation consumer calls this
for rows that are upscales (`generation.kind == "upscale"`), so the job shares the whole
pipeline (charge, submission, tracking, storage, refunds) and only its face differs.

The result goes out as a document (Telegram recompresses photos, and full resolution is the
point); the document's file_id is not kept, since the gallery re-sends pictures as photos.
"""

from __future__ import annotations

from uuid import UUID

from aiogram.methods import SendDocument
from nats.js.object_store import ObjectStore

from contracts import FailureReason, GeneratedImage
from services.bot.app.screens import View
from services.bot.app.sender import Sender
from services.bot.app.texts import Translator
from services.bot.gallery.image_files import as_upload, load
from services.bot.gallery.service import ImageService
from services.bot.generation.service import Generation
from services.bot.upscale import keyboards as kb


class UpscaleOutcomes:
    def __init__(self, images: ImageService, store: ObjectStore, sender: Sender):
        self.images = images
        self.store = store
        self.sender = sender

    def running(self, t: Translator, generation: Generation) -> str:
        return t("upscale.running", factor=generation.upscale_factor)

    async def failed(self, t: Translator, generation: Generation, reason: FailureReason) -> View:
        text = t(f"upscale.failure.{reason.value}", factor=generation.upscale_factor)
        return View(text, kb.result(t))

    async def deliver(
        self,
        generation: Generation,
        results: tuple[GeneratedImage, ...],
        t: Translator,
        refunded: int = 0,
    ) -> dict[UUID, str]:
        """The upscaled picture as a document (the caller then deletes the progress message)."""
        chat_id = generation.progress_chat_id or generation.user_id
        rows = {item.object_name: item for item in await self.images.of_generation(generation.id)}
        item = next((rows[r.object_name] for r in results if r.object_name in rows), None)
        data = await load(self.store, item.object_name) if item is not None else None
        if item is None or data is None:
            await self.sender.send(chat_id, t("upscale.nothing"), kb.result(t))
        else:
            caption = t(
                "upscale.done", factor=generation.upscale_factor, width=item.width,
                height=item.height,
            )  # fmt: skip
            document = SendDocument(
                chat_id=chat_id, document=as_upload(item, data), caption=caption,
                reply_markup=kb.result(t),
            )  # fmt: skip
            await self.sender.call(chat_id, document)
        return {}
