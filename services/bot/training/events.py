"""Training events → the avatar's status and its one progress message.

Each event is claimed in `processed_events` in the same transaction as the status change,
so redelivery does nothing twice. Status only moves forward: training → completed | error |
cancelled. Events of an older attempt and progress after an end state are ignored. A
progress edit is queued after commit, under a per-avatar lock so a slow progress edit
cannot overtake the final "ready". A progress message more than a few messages up the chat
is re-sent at the bottom (silently) instead of edited out of sight.

The end (ready, failed, cancelled) is a **new message** with its buttons, so the phone
notifies (an edit never does); the progress message is then deleted: the outcome says all
it said, and a delete spends none of the chat's messages a second (an edit would, halving
how fast a wave of finished trainings is told).
A finished portrait training is checked first (`check.py`): its transaction requests the
test portraits, and the progress message (edited, silent) says the likeness is being
checked; the check's verdict is then the new message. A training with nothing to check
against is ready at once, with a line saying why it was not checked.
The outcome is delivered *before* its transaction commits: a process killed while Telegram
holds it back rolls back, and the redelivered event tells the user again (at worst one
extra message) — the end of a training is never told zero times.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from uuid import UUID
from weakref import WeakValueDictionary

import asyncpg

from contracts import (
    Event,
    TrainingCancelled,
    TrainingCompleted,
    TrainingFailed,
    TrainingProgress,
    TrainingSubmitted,
    TrainingWaiting,
    derived_event_id,
    utcnow,
)
from contracts.jetstream import BOT_TRAINING
from services.bot.app.metrics import BotMetrics
from services.bot.app.models import Avatar, AvatarStatus
from services.bot.app.screens import View
from services.bot.app.sender import Sender
from services.bot.app.texts import Texts, Translator
from services.bot.avatars.service import COLUMNS, PRODUCER
from services.bot.credits.ledger_texts import refund_note
from services.bot.training import check_views, progress
from services.bot.training.check import CheckState, TrainingCheck
from services.kit import credits
from services.kit.consumer import Delivery, Handler, Reject
from services.kit.db import UnitOfWork

log = logging.getLogger(__name__)
CONSUMER = BOT_TRAINING.durable
TrainingEvent = (
    TrainingSubmitted
    | TrainingWaiting
    | TrainingProgress
    | TrainingCompleted
    | TrainingFailed
    | TrainingCancelled
)
Render = Callable[[Translator, Avatar], View]
_OUTCOMES = {
    AvatarStatus.COMPLETED: "completed",
    AvatarStatus.ERROR: "failed",
    AvatarStatus.CANCELLED: "cancelled",
}
#: Claim the event, lock and read its avatar (with the owner's language), move a final
#: event's status and read when Start was pressed — in one statement, so the user's final
#: edit waits for BEGIN and one round trip, not BEGIN and four (and a progress event costs
#: one round trip in all). The row lock, held to COMMIT, orders the events of one avatar;
#: the claim is written whatever the avatar's state (stale and unknown events included).
#: Every CTE sees the statement's snapshot: `moved` decides on the locked row, and the
#: result is built from the CTEs' outputs, never from a re-read of the tables. The row:
#: `claimed` NULL: handled before (nothing locked); `id` NULL: unknown avatar; else the
#: avatar as it was before the move, `moved` whether $5 (a final status, NULL for
#: progress) was applied: only to the current attempt of a training avatar; and then the
#: `TrainingRequested` outbox row's `created_at` ($6 is its id), if it is still kept.
_TRANSITION = f"""
WITH claim AS (
    INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)
    ON CONFLICT DO NOTHING
    RETURNING true AS claimed
),
locked AS (
    SELECT {", ".join("a." + c.strip() for c in COLUMNS.split(","))}, u.language,
        a.likeness_faces
    FROM avatars a JOIN users u ON u.id = a.user_id
    WHERE a.id = $3 AND EXISTS (SELECT 1 FROM claim)
    FOR UPDATE OF a
),
moved AS (
    UPDATE avatars a SET status = $5::text::avatar_status, updated_at = now() FROM locked
    WHERE a.id = locked.id AND $5::text IS NOT NULL
      AND locked.status = 'training' AND locked.training_attempt = $4
    RETURNING true AS moved
)
SELECT claim.claimed, locked.*, coalesce(moved.moved, false) AS moved,
    CASE WHEN moved.moved THEN (SELECT created_at FROM outbox WHERE id = $6) END
        AS requested_at
FROM (VALUES (1)) AS one (x) LEFT JOIN claim ON true LEFT JOIN locked ON true
    LEFT JOIN moved ON true
"""


_REMEMBER = "UPDATE avatars SET progress_chat_id = $2, progress_message_id = $3 WHERE id = $1"
#: The avatar's live message moved (re-sent at the bottom, or lost and sent anew): a running
#: likeness check's test portraits follow it, so their end deletes the message shown.
_REMEMBER_MOVED = """
WITH check_job AS (
    UPDATE generations SET progress_chat_id = $2, progress_message_id = $3
    WHERE avatar_id = $1 AND training_check AND status IN ('pending', 'submitted')
)
UPDATE avatars SET progress_chat_id = $2, progress_message_id = $3 WHERE id = $1
"""


class TrainingEvents:
    """Handlers for the `BOT_TRAINING` consumer."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        sender: Sender,
        texts: Texts,
        metrics: BotMetrics | None = None,
        check: TrainingCheck | None = None,
    ):
        self.pool = pool
        self.sender = sender
        self.texts = texts
        self.metrics = metrics or BotMetrics()
        #: The likeness check of a finished portrait training (None: ready at once).
        self.check = check
        self._locks: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()

    def handlers(self) -> dict[type[Event], Handler]:
        return {
            TrainingSubmitted: self.on_submitted,
            TrainingWaiting: self.on_waiting,
            TrainingProgress: self.on_progress,
            TrainingCompleted: self.on_completed,
            TrainingFailed: self.on_failed,
            TrainingCancelled: self.on_cancelled,
        }

    async def on_submitted(self, e: TrainingSubmitted, _: Delivery) -> None:
        await self._apply(e, None, lambda t, a: progress.queued(t, a))

    async def on_waiting(self, e: TrainingWaiting, _: Delivery) -> None:
        await self._apply(e, None, lambda t, a: progress.waiting(t, a, e.ahead))

    async def on_progress(self, e: TrainingProgress, _: Delivery) -> None:
        if e.queue_position is not None and e.progress == 0:
            await self._apply(e, None, lambda t, a: progress.queued(t, a, e.queue_position))
        else:
            await self._apply(
                e,
                None,
                lambda t, a: progress.running(t, a, e.progress, e.eta_seconds, e.estimated),
            )

    async def on_completed(self, e: TrainingCompleted, _: Delivery) -> None:
        await self._apply(e, AvatarStatus.COMPLETED, progress.completed)

    async def on_failed(self, e: TrainingFailed, _: Delivery) -> None:
        await self._apply(
            e, AvatarStatus.ERROR, lambda t, a: progress.failed(t, a, e.reason, e.retryable)
        )

    async def on_cancelled(self, e: TrainingCancelled, _: Delivery) -> None:
        await self._apply(e, AvatarStatus.CANCELLED, progress.cancelled)

    async def _apply(
        self, event: TrainingEvent, status: AvatarStatus | None, render: Render
    ) -> None:
        try:
            avatar_id = UUID(event.avatar_id)
        except ValueError:
            raise Reject(f"bad avatar id {event.avatar_id!r}") from None
        lock = self._locks.setdefault(str(avatar_id), asyncio.Lock())
        async with lock:
            shown = await self._transition(event, avatar_id, status, render)
            if shown is None:
                return
            avatar, view, checking = shown
            if status is not None and not checking:  # the outcome went out: close progress
                await self._close(avatar)
                return
            chat, message = avatar.progress_chat_id, avatar.progress_message_id
            if chat is None or message is None:
                await self._repost(avatar, view)
                return
            if self.sender.positions.buried(chat, message):
                moved = await self.sender.show_progress(chat, message, view.text, view.markup)
                if moved is not None and moved != message:
                    await self._remember(avatar.id, chat, moved)
                return
            pending = self.sender.enqueue_edit(chat, message, view.text, view.markup)
        await pending

    async def _transition(
        self, event: TrainingEvent, avatar_id: UUID, status: AvatarStatus | None, render: Render
    ) -> tuple[Avatar, View, bool] | None:
        """The avatar (as before the move), what to show, and whether a likeness check now
        runs (the view is then its progress, not the end)."""
        statement = (
            _TRANSITION,
            CONSUMER,
            UUID(event.event_id),
            avatar_id,
            event.attempt,
            None if status is None else status.value,
            UUID(derived_event_id("training_requested", avatar_id, event.attempt)),
        )
        if status is None:
            # Progress changes nothing but the claim: its one statement is its own transaction.
            row = self._claimed(await self.pool.fetchrow(*statement), event, avatar_id)
            if row is None:
                return None
            avatar = Avatar.from_record(row)
            return avatar, render(Translator(self.texts, row["language"]), avatar), False
        async with UnitOfWork(self.pool, PRODUCER) as uow:
            row = self._claimed(await uow.conn.fetchrow(*statement), event, avatar_id)
            if row is None:
                return None  # commits the claim: a stale or unknown event stays handled
            assert row["moved"], "the statement's guard and `_claimed` disagree"
            avatar = Avatar.from_record(row)  # as it was before the move, like the view expects
            t = Translator(self.texts, row["language"])
            view = render(t, avatar)
            checking = False
            if status is AvatarStatus.COMPLETED and self.check is not None:
                check = await self.check.begin(uow, avatar, row["likeness_faces"])
                checking = check is not None and check.state is CheckState.CHECKING
                if checking:
                    view = check_views.checking(t, avatar, self.check.pictures)
                elif check is not None:  # ready at once: nothing to compare with, and why
                    view = check_views.verdict(t, avatar, check, 0)
            refunded = await self._refund(uow.conn, event, avatar.id)
            if refunded is not None:
                view = View(view.text + "\n\n" + refund_note(t, refunded), view.markup)
            if not checking:
                await self._tell_end(uow.conn, avatar, view)
        self._finished(avatar, status, row["requested_at"])
        return avatar, view, checking

    @staticmethod
    def _claimed(
        row: asyncpg.Record | None, event: TrainingEvent, avatar_id: UUID
    ) -> asyncpg.Record | None:
        """The `_TRANSITION` row when the event is new and of the avatar's current training;
        None (logged) when it was handled before, its avatar is unknown, or it is stale."""
        assert row is not None  # the statement always returns its one row
        if not row["claimed"]:
            return None
        if row["id"] is None:
            log.info("event for unknown avatar %s ignored", avatar_id)
            return None
        if (
            event.attempt != row["training_attempt"]
            or AvatarStatus(row["status"]) is not AvatarStatus.TRAINING
        ):
            log.info(
                "stale %s ignored (attempt %d, avatar at %d/%s)",
                type(event).__name__,
                event.attempt,
                row["training_attempt"],
                AvatarStatus(row["status"]),
            )
            return None
        return row

    async def _refund(
        self, conn: asyncpg.Connection, event: TrainingEvent, avatar_id: UUID
    ) -> credits.Entry | None:
        """Give the attempt's credits back when its end was not the user's doing: a failure
        with a refundable reason, or a cancel that came before FAL got the job. Runs in the
        status change's transaction; the refund's key makes a redelivery refund nothing.
        The key is built from the avatar's canonical id (what `TrainingRequested` carried
        and the trainer charged under), not from however the event spelled it."""
        if isinstance(event, TrainingFailed) and event.reason.refundable:
            reason = event.reason.value
        elif isinstance(event, TrainingCancelled) and event.request_id is None:
            reason = "cancelled_before_submit"
        else:
            return None
        attempt = event.attempt
        if self.check is not None:  # a free redo that failed gives back the paid attempt
            attempt = await self.check.paid_attempt(conn, avatar_id, attempt)
        key = credits.training_charge_key(str(avatar_id), attempt)
        posting = await credits.refund(conn, charge_key=key, reason=reason)
        if posting is None:
            return None
        if not posting.duplicate:
            self.metrics.credit_refunds.labels("training", reason).inc()
        return posting.entry

    def _finished(
        self, avatar: Avatar, status: AvatarStatus, requested_at: datetime | None
    ) -> None:
        """The user has been shown the end: count it, and time it from the Start press.

        The `TrainingRequested` outbox row was written in the transaction that moved the
        avatar to training, so its `created_at` is the press; published rows are kept for
        24 hours, and a training older than that is not timed (the stuck alert fired long
        before)."""
        outcome = _OUTCOMES[status]
        kind = avatar.training_type.value
        self.metrics.trainings_finished.labels(kind, outcome).inc()
        if requested_at is not None:
            seconds = max(0.0, (utcnow() - requested_at).total_seconds())
            self.metrics.training_e2e_seconds.labels(kind, outcome).observe(seconds)
        log.info("training %s shown to the user", outcome, extra={"avatar_id": str(avatar.id)})

    async def _tell_end(self, conn: asyncpg.Connection, avatar: Avatar, view: View) -> None:
        """The outcome as a new message with its buttons (notified); runs inside the status
        change's transaction (see the module doc). The outcome becomes the avatar's live
        message (Retry is pressed there)."""
        chat = avatar.progress_chat_id or avatar.user_id
        sent = await self.sender.send(chat, view.text, view.markup)
        if sent is not None:
            await conn.execute(_REMEMBER, avatar.id, sent.chat.id, sent.message_id)

    async def _close(self, avatar: Avatar) -> None:
        """After the commit: the old progress message is deleted (its buttons, Cancel among
        them, go with it); the avatar's lock keeps a late progress edit off it."""
        if avatar.progress_chat_id is not None and avatar.progress_message_id is not None:
            await self.sender.delete(avatar.progress_chat_id, avatar.progress_message_id)

    async def _repost(self, avatar: Avatar, view: View) -> None:
        """No progress message is known (it was lost): send a new one and remember it."""
        sent = await self.sender.send(avatar.user_id, view.text, view.markup, silent=True)
        if sent is not None:
            await self._remember(avatar.id, sent.chat.id, sent.message_id)

    async def _remember(self, avatar_id: UUID, chat_id: int, message_id: int) -> None:
        await self.pool.execute(_REMEMBER_MOVED, avatar_id, chat_id, message_id)
