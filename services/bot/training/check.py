"""The training check (`docs/likeness.md`, "Training check"): a finished portrait training
draws a few test portraits, the bot scores them against the person's reference identity,
and only then calls the avatar ready — or, when they do not look like the person, offers
one free retrain or the training's credits back.

Rows live in `training_checks` (bot-owned, 0014), one per checked attempt. Every step is a
guarded state change, so a redelivered event or a double press changes nothing twice:
`begin` runs in the transaction that records the training's end (with the test portraits'
generation and its request in the outbox); `finish` moves `checking` to a verdict once; a
decision is taken once, on the current attempt's poor check, in one transaction with what
it does (the retrain's request, the refund's ledger entry). The product chose the check,
so nothing of it is charged: the test portraits are requested at price 0, the redo too.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

import asyncpg

from contracts import TrainingType
from services.bot.app.metrics import BotMetrics
from services.bot.app.models import Avatar
from services.bot.avatars.likeness import MIN_FACES, WEAK, Identity, distance, percent
from services.bot.avatars.likeness_rows import identity as load_identity
from services.bot.avatars.service import COLUMNS as AVATAR_COLUMNS
from services.bot.avatars.service import PRODUCER, training_requested
from services.bot.generation.service import COLUMNS as GENERATION_COLUMNS
from services.bot.generation.service import Generation, new_seed, requested
from services.kit import credits
from services.kit.db import UnitOfWork

log = logging.getLogger(__name__)

#: The test portraits: the person alone, facing the camera, nothing to hide the face.
PROMPT = (
    "{trigger}, a close-up portrait photo of the person looking at the camera, "
    "soft daylight, plain background, sharp focus"
)
ASPECT = "3:4"
PICTURES = 2
REFUND_REASON = "poor_likeness"
_CHECK = (
    "avatar_id, attempt, user_id, generation_id, paid_attempt, redo, state, reason, scores, "
    "score, decision"
)


class CheckState(StrEnum):
    CHECKING = "checking"
    PASSED = "passed"
    POOR = "poor"
    SKIPPED = "skipped"


class Decision(StrEnum):
    REDO = "redo"
    REFUND = "refund"
    KEEP = "keep"


@dataclass(frozen=True, kw_only=True)
class Check:
    avatar_id: UUID
    attempt: int
    user_id: int
    generation_id: UUID | None
    #: The attempt whose charge a refund gives back (a free redo's is the one before it).
    paid_attempt: int
    #: This attempt is the free retrain: its check offers no second one.
    redo: bool
    state: CheckState
    #: Why a check was skipped: no_identity, weak_identity, no_face, failed.
    reason: str | None
    scores: tuple[float | None, ...]
    score: float | None
    decision: Decision | None

    @property
    def redo_offered(self) -> bool:
        return self.state is CheckState.POOR and not self.redo and self.decision is None

    @classmethod
    def from_record(cls, r: Any) -> Check:
        return cls(
            avatar_id=r["avatar_id"],
            attempt=r["attempt"],
            user_id=r["user_id"],
            generation_id=r["generation_id"],
            paid_attempt=r["paid_attempt"],
            redo=r["redo"],
            state=CheckState(r["state"]),
            reason=r["reason"],
            scores=tuple(r["scores"] or ()),
            score=r["score"],
            decision=None if r["decision"] is None else Decision(r["decision"]),
        )


@dataclass(frozen=True)
class Decided:
    decision: Decision
    #: The avatar after the decision (a redo: training its next attempt).
    avatar: Avatar
    refund: credits.Entry | None = None
    left_out: int = 0


@dataclass(frozen=True)
class CheckStats:
    """For the admin's /stats: the last 30 days of training checks."""

    checked: int
    passed: int
    poor: int
    redo: int
    refund: int
    keep: int
    skipped: int
    median: float | None
    cost_usd: float


def judge(scores: Sequence[float | None]) -> tuple[CheckState, float | None, str | None]:
    """The verdict on the test portraits' scores: their median against the "low" band
    (`likeness.WEAK`); no face in any of them: skipped, the check could not tell."""
    scored = [s for s in scores if s is not None]
    if not scored:
        return CheckState.SKIPPED, None, "no_face"
    score = round(float(statistics.median(scored)), 1)
    return (CheckState.POOR if score < WEAK else CheckState.PASSED), score, None


def weakest(photos: Sequence[Any], identity: Identity | None, keep: int) -> list[UUID]:
    """The photos a redo leaves out, weakest first, so that `keep` stay: those the gate
    warned about (blur, a small face, …), or without one clear face, or whose face is
    someone else's by the likeness scale; never a photo the gate found nothing wrong with."""
    flagged: list[tuple[float, UUID]] = []
    for p in photos:
        weight = float(len(p["warnings"] or ()))
        if (p["face_count"] or 0) != 1:
            weight += 1
        face = p["embedding"]
        if identity is not None and face is not None and percent(distance(face, identity)) < WEAK:
            weight += 2
        if weight > 0:
            flagged.append((weight, p["id"]))
    flagged.sort(key=lambda f: f[0], reverse=True)
    return [photo_id for _, photo_id in flagged[: max(0, len(photos) - keep)]]


class TrainingCheck:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        pictures: int = PICTURES,
        min_photos: int = 10,
        metrics: BotMetrics | None = None,
    ):
        self.pool = pool
        #: Test portraits per check; 0 turns the check off (`BOT_TRAINING_CHECK_PICTURES`).
        self.pictures = pictures
        self.min_photos = min_photos
        self.metrics = metrics or BotMetrics()

    async def begin(self, uow: UnitOfWork, avatar: Avatar, faces: int | None) -> Check | None:
        """In the transaction recording the training's end: the check of this attempt, with
        its test portraits requested (`checking`), or skipped with its reason when there is
        nothing to check against (`faces`: the reference identity's, `likeness_faces`).
        None: not a portrait, or the check is off. One statement when skipped (the path of
        every training without faces), three when checking."""
        if self.pictures <= 0 or avatar.training_type is not TrainingType.PORTRAIT:
            return None
        generation = None
        if not faces or faces < MIN_FACES:
            state, reason = CheckState.SKIPPED, "no_identity" if not faces else "weak_identity"
            self.metrics.training_checks.labels(reason).inc()
        else:
            state, reason = CheckState.CHECKING, None
            generation = await self._request(uow, avatar)
        row = await uow.conn.fetchrow(
            "INSERT INTO training_checks (avatar_id, attempt, user_id, generation_id, "
            "paid_attempt, redo, state, reason, checked_at) "
            "SELECT $1, $2, $3, $4, coalesce(before.paid, $2), before.paid IS NOT NULL, $5, $6, "
            "CASE WHEN $5 = 'skipped' THEN now() END FROM (VALUES (1)) AS one (x) LEFT JOIN "
            "(SELECT paid_attempt AS paid FROM training_checks WHERE avatar_id = $1 "
            " AND attempt = $2 - 1 AND decision = 'redo') AS before ON true "
            f"ON CONFLICT (avatar_id, attempt) DO NOTHING RETURNING {_CHECK}",
            avatar.id, avatar.training_attempt, avatar.user_id,
            None if generation is None else generation.id, state.value, reason,
        )  # fmt: skip
        return None if row is None else Check.from_record(row)

    async def _request(self, uow: UnitOfWork, avatar: Avatar) -> Generation:
        """The test portraits, in the avatar's progress message, requested at price 0."""
        row = await uow.conn.fetchrow(
            "INSERT INTO generations (user_id, avatar_id, prompt, aspect_ratio, num_images, "
            "seed, progress_chat_id, progress_message_id, training_check) "
            f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true) RETURNING {GENERATION_COLUMNS}",
            avatar.user_id, avatar.id, PROMPT.format(trigger=avatar.trigger_word), ASPECT,
            self.pictures, new_seed(), avatar.progress_chat_id or avatar.user_id,
            avatar.progress_message_id,
        )  # fmt: skip
        generation = Generation.from_record(row)
        uow.publish(requested(generation, 0))
        return generation

    async def finish(self, generation_id: UUID, scores: Sequence[float | None]) -> Check | None:
        """The verdict on the test portraits, once."""
        state, score, reason = judge(scores)
        return await self._settle(generation_id, state, score, reason, list(scores))

    async def failed(self, generation_id: UUID) -> Check | None:
        """The test portraits could not be made: the avatar is ready unchecked."""
        return await self._settle(generation_id, CheckState.SKIPPED, None, "failed", None)

    async def _settle(
        self,
        generation_id: UUID,
        state: CheckState,
        score: float | None,
        reason: str | None,
        scores: list[float | None] | None,
    ) -> Check | None:
        """`checking` → its end, once: a redelivered event finds it settled and gets the
        stored check unchanged (None: no check has this generation)."""
        row = await self.pool.fetchrow(
            f"UPDATE training_checks SET state = $2, score = $3, reason = $4, scores = $5, "
            f"checked_at = now() WHERE generation_id = $1 AND state = 'checking' "
            f"RETURNING {_CHECK}",
            generation_id, state.value, score, reason, scores,
        )  # fmt: skip
        if row is not None:
            self.metrics.training_checks.labels(reason or state.value).inc()
            log.info("training check %s", reason or state.value, extra={"score": score})
            return Check.from_record(row)
        row = await self.pool.fetchrow(
            f"SELECT {_CHECK} FROM training_checks WHERE generation_id = $1", generation_id
        )
        return None if row is None else Check.from_record(row)

    async def paid_attempt(self, conn: asyncpg.Connection, avatar_id: UUID, attempt: int) -> int:
        """The attempt whose charge stands for `attempt`: a free redo's is the paid one."""
        paid = await conn.fetchval(
            "SELECT paid_attempt FROM training_checks WHERE avatar_id = $1 AND attempt = $2 "
            "AND decision = 'redo'",
            avatar_id,
            attempt - 1,
        )
        return attempt if paid is None else int(paid)

    async def decide(
        self, user_id: int, avatar_id: UUID, decision: Decision, chat_id: int, message_id: int
    ) -> Decided | None:
        """The user's answer to a poor check of the avatar's current attempt, taken once;
        None when there is no such open question (pressed twice, an old message, someone
        else's avatar, or a redo asked of a check that was itself the redo)."""
        async with UnitOfWork(self.pool, PRODUCER) as uow:
            conn = uow.conn
            row = await conn.fetchrow(
                f"SELECT {', '.join('c.' + c.strip() for c in _CHECK.split(','))} "
                "FROM training_checks c JOIN avatars a ON a.id = c.avatar_id "
                "WHERE c.avatar_id = $1 AND c.user_id = $2 AND c.attempt = a.training_attempt "
                "AND c.state = 'poor' AND c.decision IS NULL AND a.status = 'completed' "
                "FOR UPDATE OF c, a",
                avatar_id,
                user_id,
            )
            if row is None:
                return None
            check = Check.from_record(row)
            if decision is Decision.REDO and not check.redo_offered:
                return None
            left_out, refund = 0, None
            if decision is Decision.REDO:
                left_out = await self._leave_out(conn, avatar_id)
            if decision is Decision.REFUND:
                key = credits.training_charge_key(str(avatar_id), check.paid_attempt)
                posting = await credits.refund(conn, charge_key=key, reason=REFUND_REASON)
                refund = None if posting is None else posting.entry
            redo = (left_out,) if decision is Decision.REDO else ()
            row = await conn.fetchrow(_MOVES[decision], avatar_id, chat_id, message_id, *redo)
            avatar = Avatar.from_record(row)
            if decision is Decision.REDO:
                uow.publish(training_requested(avatar, 0, redo=True))
            await conn.execute(
                "UPDATE training_checks SET decision = $3, decided_at = now(), left_out = $4 "
                "WHERE avatar_id = $1 AND attempt = $2",
                avatar_id, check.attempt, decision.value, left_out,
            )  # fmt: skip
        self.metrics.training_check_decisions.labels(decision.value).inc()
        if refund is not None:
            self.metrics.credit_refunds.labels("training", REFUND_REASON).inc()
        log.info("training check decision %s", decision, extra={"avatar_id": str(avatar_id)})
        return Decided(decision, avatar, refund, left_out)

    async def stats(self, days: int = 30) -> CheckStats:
        """The last `days` of checks; the cost is FAL's for the test portraits and for the free
        redos' trainings (a redo's cost is on its avatar while it is the latest attempt)."""
        row = await self.pool.fetchrow(
            "SELECT count(*) FILTER (WHERE state IN ('passed', 'poor')) AS checked, "
            "count(*) FILTER (WHERE state = 'passed') AS passed, "
            "count(*) FILTER (WHERE state = 'poor') AS poor, "
            "count(*) FILTER (WHERE decision = 'redo') AS redo, "
            "count(*) FILTER (WHERE decision = 'refund') AS refund, "
            "count(*) FILTER (WHERE decision = 'keep') AS keep, "
            "count(*) FILTER (WHERE state = 'skipped') AS skipped, "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY score) AS median, "
            "coalesce(sum(g.cost_usd), 0) + coalesce(sum(a.cost_usd) FILTER (WHERE c.redo "
            " AND a.submitted_attempt = c.attempt), 0) AS cost "
            "FROM training_checks c LEFT JOIN generations g ON g.id = c.generation_id "
            "JOIN avatars a ON a.id = c.avatar_id "
            "WHERE c.created_at > now() - make_interval(days => $1)",
            days,
        )
        return CheckStats(
            row["checked"], row["passed"], row["poor"], row["redo"], row["refund"], row["keep"],
            row["skipped"], row["median"], float(row["cost"]),
        )  # fmt: skip

    async def _leave_out(self, conn: asyncpg.Connection, avatar_id: UUID) -> int:
        photos = await conn.fetch(
            "SELECT id, warnings, face_count, embedding FROM photos "
            "WHERE avatar_id = $1 AND status = 'accepted'",
            avatar_id,
        )
        identity = await load_identity(conn, avatar_id)
        out = weakest(photos, identity, self.min_photos)
        if out:
            await conn.execute(
                "UPDATE photos SET status = 'rejected', error = 'left_out_for_redo' "
                "WHERE id = ANY($1::uuid[])",
                out,
            )
        return len(out)


#: What each decision does to the avatar: a redo trains the next attempt (its request is
#: the caller's), without the `$4` photos it left out; a refund retires the model
#: (cancelled: the user turned it down; Retry stays, and is paid again); keeping it changes
#: nothing but the live message.
_LIVE = "progress_chat_id = $2, progress_message_id = $3"
_SETS = {
    Decision.REDO: "status = 'training', training_attempt = training_attempt + 1, "
    f"photo_count = photo_count - $4, updated_at = now(), {_LIVE}",
    Decision.REFUND: f"status = 'cancelled', updated_at = now(), {_LIVE}",
    Decision.KEEP: _LIVE,
}
_MOVES = {
    decision: f"UPDATE avatars SET {sets} WHERE id = $1 RETURNING {AVATAR_COLUMNS}"
    for decision, sets in _SETS.items()
}
