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
from services.bot.app import main_menu as menu
from services.bot.app.models import Avatar
from services.bot.app.screens import View
from services.bot.app.sender import Sender
from services.bot.app.texts import Translator
from services.bot.avatars.likeness_scorer import LikenessScorer
from services.bot.avatars.likeness_texts import line
from services.bot.avatars.service import AvatarService
from services.bot.gallery.image_files import as_upload, file_id_of, showable
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
        avatars: AvatarService,
        checks: TrainingCheck,
        images: ImageService,
        store: ObjectStore,
        sender: Sender,
        scorer: LikenessScorer | None,
    ):
        self.avatars = avatars
        self.checks = checks
        self.images = images
        self.store = store
        self.sender = sender
        self.scorer = scorer

    def running(self, t: Translator, generation: Generation) -> str:
        return t("check.drawing", count=generation.num_images)

    async def failed(self, t: Translator, generation: Generation, reason: FailureReason) -> View:
        """No test portraits: the avatar is ready all the same (the check is ours)."""
        check = await self.checks.failed(generation.id)
        avatar = await self._avatar(generation)
        if check is None or avatar is None:  # the avatar was deleted meanwhile
            return View(t("check.skipped.failed"), menu.main_menu(t))
        return check_views.verdict(t, avatar, check, 0)

    async def deliver(
        self,
        generation: Generation,
        results: tuple[GeneratedImage, ...],
        t: Translator,
        refunded: int = 0,
    ) -> dict[UUID, str]:
        chat_id = generation.progress_chat_id or generation.user_id
        shown, _, _ = await showable(self.images, self.store, generation.id, results)
        scores = (
            await self.scorer.score_shown(generation.avatar_id, shown, self.images)
            if self.scorer is not None
            else [None] * len(shown)
        )
        percents = [None if s is None else s.percent for s in scores]
        check = await self.checks.finish(generation.id, percents)
        sent: list[Message] = []
        if shown:
            media: list[Media] = [
                InputMediaPhoto(
                    media=as_upload(picture.item, picture.data),
                    caption=check_views.portrait(t, i + 1, line(t, percents[i])),
                )
                for i, picture in enumerate(shown)
            ]
            album = SendMediaGroup(chat_id=chat_id, media=media, disable_notification=True)
            messages = await self.sender.call(chat_id, album)
            sent = list(messages or [])
        avatar = await self._avatar(generation)
        if check is not None and avatar is not None:
            key = credits.training_charge_key(str(avatar.id), check.paid_attempt)
            paid = await credits.charged(self.checks.pool, key)  # what a refund gives back
            view = check_views.verdict(t, avatar, check, paid)
            await self.sender.send(chat_id, view.text, view.markup)
        return {
            picture.item.id: file_id
            for picture, message in zip(shown, sent, strict=False)
            if (file_id := file_id_of(message))
        }

    async def _avatar(self, generation: Generation) -> Avatar | None:
        if generation.avatar_id is None:
            return None
        return await self.avatars.get(generation.user_id, generation.avatar_id)
