"""Scoring a generation's pictures against its avatar's reference identity, with a bound:
the faces are found in the photo gate's worker process, and a delivery waits for them at
most `timeout` seconds (`docs/likeness.md`), after which the pictures go out unscored.

Outcomes per picture (`None` = no score is stored or shown): the avatar has no identity (a
style avatar, a quick generation, a set without faces) or a weak one (fewer than
`likeness.MIN_FACES` faces); no usable face in the picture (not applicable); the worker
failed or the bound passed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from uuid import UUID

import asyncpg

from services.bot.app.metrics import BotMetrics
from services.bot.avatars import likeness_rows
from services.bot.avatars.likeness import Score, best
from services.bot.avatars.photo_gate import PhotoGate
from services.bot.gallery.image_files import Shown
from services.bot.gallery.service import ImageService

log = logging.getLogger(__name__)

#: How long a delivery may wait for its scores (4 pictures cost ~0.6 s of CPU; see the doc).
TIMEOUT_SECONDS = 5.0


class LikenessScorer:
    def __init__(
        self,
        pool: asyncpg.Pool,
        gate: PhotoGate,
        *,
        timeout: float = TIMEOUT_SECONDS,
        metrics: BotMetrics | None = None,
    ):
        self.pool = pool
        self.gate = gate
        self.timeout = timeout
        self.metrics = metrics or BotMetrics()

    async def score(self, avatar_id: UUID | None, pictures: Sequence[bytes]) -> list[Score | None]:
        none: list[Score | None] = [None] * len(pictures)
        if avatar_id is None or not pictures:
            return none
        identity = await likeness_rows.identity(self.pool, avatar_id)
        if identity is None or identity.weak:
            self._count("no_identity" if identity is None else "weak_identity", len(pictures))
            return none
        try:
            found = await asyncio.wait_for(
                asyncio.gather(*(self.gate.faces(p) for p in pictures)), self.timeout
            )
        except TimeoutError:
            log.warning("likeness scoring timed out", extra={"avatar_id": str(avatar_id)})
            self._count("timeout", len(pictures))
            return none
        except (OSError, RuntimeError) as e:  # a broken worker pool, a picture dlib refused
            log.warning("likeness scoring failed: %s", e, extra={"avatar_id": str(avatar_id)})
            self._count("error", len(pictures))
            return none
        scores = [best(faces, identity) for faces in found]
        for s in scores:
            if s is None:
                self._count("no_face")
            else:
                self._count("scored")
                self.metrics.likeness_percent.observe(s.percent)
        return scores

    async def score_shown(
        self, avatar_id: UUID | None, shown: Sequence[Shown], images: ImageService
    ) -> list[Score | None]:
        """Score a delivery's pictures and keep each score with its picture (the gallery
        shows it later), before they are sent."""
        scores = await self.score(avatar_id, [s.data for s in shown])
        for picture, score in zip(shown, scores, strict=True):
            if score is not None:
                await images.set_likeness(picture.item.id, score.percent, score.distance)
        return scores

    def _count(self, outcome: str, n: int = 1) -> None:
        self.metrics.likeness_scored.labels(outcome).inc(n)
