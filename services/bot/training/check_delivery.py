"""The test portraits' end, as the generation consumer's face for `generation.kind ==
"check"` (`app/generation_wiring.py`): the pictures are scored against the person, shown
as one silent album with their scores, and followed by the verdict — the one message that
notifies (`check_views.verdict`). A failure to make them leaves the avatar ready, unchecked.

At-least-once like every delivery: a crash after the album and before the generation is
marked delivered shows the album again; the verdict is taken once (`TrainingCheck.finish`)
and a repeat shows the stored one.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg
from aiogram.methods import SendMediaGroup
from aiogram.types import (
    InputMediaAudio,
    InputMediaDocument,
    InputMediaLivePhoto,
    InputMediaPhoto,
    InputMediaVideo,
    Message,
)
from nats.js.object_store import ObjectStore

from contracts import FailureReason, GeneratedImage
from services.bot.app.models import Avatar
from services.bot.app.screens import View
from services.bot.app.sender import Sender
from services.bot.app.texts import Translator
from services.bot.avatars.likeness_scorer import LikenessScorer
from services.bot.avatars.likeness_texts import line
from services.bot.avatars.service import COLUMNS as AVATAR_COLUMNS
from services.bot.gallery.image_files import as_upload, file_id_of, load
from services.bot.gallery.service import ImageService
from services.bot.generation.service import Generation
from services.bot.training import check_views
from services.bot.training.check import TrainingCheck
from services.kit import credits

Media = (
    InputMediaAudio | InputMediaDocument | InputMediaLivePhoto | InputMediaPhoto | InputMediaVideo
)


class CheckDelivery:
    def __init__(
        self,
        pool: asyncpg.Pool,
        checks: TrainingCheck,
        images: ImageService,
        store: ObjectStore,
        sender: Sender,
        scorer: LikenessScorer | None,
    ):
        self.pool = pool
        self.checks = checks
        self.images = images
        self.store = store
        self.sender = sender
        self.scorer = scorer

    def running(self, t: Translator, generation: Generation) -> str:
        return t("check.drawing", count=generation.num_images)

    async def failed(self, t: Translator, generation: Generation, reason: FailureReason) -> View:
        """No test portraits: the avatar is ready all the same (the check is ours)."""
        await self.checks.failed(generation.id)
        avatar = await self._avatar(generation)
        name = avatar.name if avatar is not None else ""
        text = t("progress.completed", name=name) + "\n\n" + t("check.skipped.failed")
        return check_views.ready(t, text)

    async def deliver(
        self,
        generation: Generation,
        results: tuple[GeneratedImage, ...],
        t: Translator,
        refunded: int = 0,
    ) -> dict[UUID, str]:
        chat_id = generation.progress_chat_id or generation.user_id
        rows = {item.object_name: item for item in await self.images.of_generation(generation.id)}
        shown = []
        for result in results:
            item = rows.get(result.object_name)
            data = await load(self.store, result.object_name) if item is not None else None
            if item is not None and data is not None and not (result.nsfw or item.nsfw):
                shown.append((item, data))
        scores = (
            await self.scorer.score(generation.avatar_id, [data for _, data in shown])
            if self.scorer is not None
            else [None] * len(shown)
        )
        for (item, _), score in zip(shown, scores, strict=True):
            if score is not None:
                await self.images.set_likeness(item.id, score.percent, score.distance)
        percents = [None if s is None else s.percent for s in scores]
        check = await self.checks.finish(generation.id, percents)
        sent: list[Message] = []
        if shown:
            media: list[Media] = [
                InputMediaPhoto(
                    media=as_upload(item, data),
                    caption=check_views.portrait(t, i + 1, line(t, percents[i])),
                )
                for i, (item, data) in enumerate(shown)
            ]
            album = SendMediaGroup(chat_id=chat_id, media=media, disable_notification=True)
            messages = await self.sender.call(chat_id, album)
            sent = list(messages or [])
        avatar = await self._avatar(generation)
        if check is not None and avatar is not None:
            paid = await self._paid(avatar.id, check.paid_attempt)
            view = check_views.verdict(t, avatar, check, paid)
            await self.sender.send(chat_id, view.text, view.markup)
        return {
            item.id: file_id
            for (item, _), message in zip(shown, sent, strict=False)
            if (file_id := file_id_of(message))
        }

    async def _avatar(self, generation: Generation) -> Avatar | None:
        row = await self.pool.fetchrow(
            f"SELECT {AVATAR_COLUMNS} FROM avatars WHERE id = $1", generation.avatar_id
        )
        return None if row is None else Avatar.from_record(row)

    async def _paid(self, avatar_id: UUID, attempt: int) -> int:
        """The credits a refund would give back (what that attempt was charged)."""
        key = credits.training_charge_key(str(avatar_id), attempt)
        entry = await credits.entry(self.pool, key)
        return -entry.amount if entry is not None else 0
