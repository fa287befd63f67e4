"""Delivering a finished generation: the pictures as one album (one picture: one photo),
a short caption, the "again / more like this / gallery" buttons, and notes for what was
withheld — all through the rate-limited sender.

An album cannot carry buttons, so after an album a small message below it does; a single
picture carries them itself. Pictures flagged NSFW are never sent, only counted in a note.
"""

from __future__ import annotations

from uuid import UUID

from aiogram.methods import SendMediaGroup, SendPhoto
from aiogram.types import (
    InputMediaAudio,
    InputMediaDocument,
    InputMediaLivePhoto,
    InputMediaPhoto,
    InputMediaVideo,
    Message,
)
from nats.js.object_store import ObjectStore

from contracts import GeneratedImage
from services.bot.app.sender import Sender
from services.bot.app.texts import Translator
from services.bot.avatars.likeness_scorer import LikenessScorer
from services.bot.avatars.likeness_texts import line
from services.bot.gallery.callbacks import GalleryCb
from services.bot.gallery.image_files import Shown, as_upload, file_id_of, showable
from services.bot.gallery.service import ImageService
from services.bot.generation import keyboards as kb
from services.bot.generation import views
from services.bot.generation.likeness_retry import LikenessRetry
from services.bot.generation.prompts import Catalogue
from services.bot.generation.service import Generation

MediaItem = (
    InputMediaAudio | InputMediaDocument | InputMediaLivePhoto | InputMediaPhoto | InputMediaVideo
)


class ResultDelivery:
    def __init__(
        self,
        images: ImageService,
        store: ObjectStore,
        sender: Sender,
        styles: Catalogue,
        likeness: LikenessScorer | None = None,
        retry: LikenessRetry | None = None,
    ):
        self.images = images
        self.store = store
        self.sender = sender
        self.styles = styles
        self.likeness = likeness
        self.retry = retry

    async def deliver(
        self,
        generation: Generation,
        results: tuple[GeneratedImage, ...],
        t: Translator,
        refunded: int = 0,
    ) -> dict[UUID, str]:
        """Send what can be shown; returns the new file_id of each sent picture by row id.
        `refunded` credits (nothing could be shown) are mentioned in the closing note."""
        ready, withheld, missing = await showable(self.images, self.store, generation.id, results)
        chat_id = generation.progress_chat_id or generation.user_id
        caption = views.caption(t, generation, self.styles)
        scores, weak = await self._likeness(generation, ready, t)
        notes = views.notes(t, withheld, missing)
        if refunded:
            key = "packs.refunded_part" if generation.pack_order_id else "credits.refunded_nsfw"
            notes += "\n\n" + t(key, credits=refunded)
        originals = [r.item.id for r in ready]
        markup = kb.results(t, generation.id, GalleryCb(), originals)
        sent: list[Message] = []
        if len(ready) == 1:
            photo = await self.sender.call(chat_id, SendPhoto(
                chat_id=chat_id, photo=as_upload(ready[0].item, ready[0].data),
                caption=caption + scores[0] + notes, reply_markup=markup,
            ))  # fmt: skip
            sent = [photo] if photo is not None else []
        else:
            if ready:
                media: list[MediaItem] = [
                    InputMediaPhoto(
                        media=as_upload(r.item, r.data),
                        caption=((caption if i == 0 else "") + scores[i]).strip() or None,
                    )
                    for i, r in enumerate(ready)
                ]
                album = SendMediaGroup(chat_id=chat_id, media=media)
                messages = await self.sender.call(chat_id, album)
                sent = list(messages or [])
            key = "generate.done" if ready else "generate.nothing_to_show"
            await self.sender.send(chat_id, t(key, count=len(ready)) + notes, markup)
        if self.retry is not None and weak:
            await self.retry.offer(generation, weak, t)
        return {
            r.item.id: file_id
            for r, message in zip(ready, sent, strict=False)
            if (file_id := file_id_of(message))
        }

    async def _likeness(
        self, generation: Generation, ready: list[Shown], t: Translator
    ) -> tuple[list[str], int]:
        """Each picture's likeness line (stored with the picture first; "" when unscored)
        and how many are weak. Waits at most the scorer's bound (`LikenessScorer.timeout`)."""
        if self.likeness is None or generation.avatar_id is None:
            return [""] * len(ready), 0
        scores = await self.likeness.score_shown(generation.avatar_id, ready, self.images)
        lines = ["" if score is None else "\n" + line(t, score.percent) for score in scores]
        return lines, sum(1 for score in scores if score is not None and score.weak)
