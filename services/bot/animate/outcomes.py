"""How an animation looks while it runs and when it ends; the generation consumer calls this
for rows that are animations (`generation.kind == "animation"`), so the job shares the whole
pipeline (charge, submission, tracking, storage, refunds) and only its face differs.

The clip goes out as a NEW video message (sendVideo through the one sender, so it is paced
and retried like every message), and its file_id is kept: the gallery re-sends the video by
it. The progress message is deleted once the video is there (by the generation consumer).
"""

from __future__ import annotations

from uuid import UUID

from aiogram.methods import SendVideo
from nats.js.object_store import ObjectStore

from contracts import FailureReason, GeneratedImage
from services.bot.animate import keyboards as kb
from services.bot.app.screens import View
from services.bot.app.sender import Sender
from services.bot.app.texts import Translator
from services.bot.gallery.image_files import as_upload, load
from services.bot.gallery.service import ImageService
from services.bot.generation.service import Generation


class AnimationOutcomes:
    def __init__(self, images: ImageService, store: ObjectStore, sender: Sender):
        self.images = images
        self.store = store
        self.sender = sender

    def running(self, t: Translator, generation: Generation) -> str:
        return t("animate.running", seconds=generation.animation_seconds)

    async def failed(self, t: Translator, generation: Generation, reason: FailureReason) -> View:
        return View(t(f"animate.failure.{reason.value}"), kb.result(t))

    async def deliver(
        self,
        generation: Generation,
        results: tuple[GeneratedImage, ...],
        t: Translator,
        refunded: int = 0,
    ) -> dict[UUID, str]:
        """The clip as a new video message (the caller then deletes the progress message)."""
        chat_id = generation.progress_chat_id or generation.user_id
        rows = {item.object_name: item for item in await self.images.of_generation(generation.id)}
        item = next((rows[r.object_name] for r in results if r.object_name in rows), None)
        data = await load(self.store, item.object_name) if item is not None else None
        file_ids: dict[UUID, str] = {}
        if item is None or data is None or not item.is_video:
            await self.sender.send(chat_id, t("animate.nothing"), kb.result(t))
        else:
            video = SendVideo(
                chat_id=chat_id, video=as_upload(item, data), width=item.width,
                height=item.height, duration=generation.animation_seconds,
                supports_streaming=True, caption=t("animate.done"), reply_markup=kb.result(t),
            )  # fmt: skip
            sent = await self.sender.call(chat_id, video)
            if sent is not None and sent.video is not None:
                file_ids[item.id] = sent.video.file_id
        return file_ids
