"""Bot metrics: Telegram API calls, updates, the avatar funnel, photos and the sender.

Labels are closed sets (Bot API method names, outcome codes, training types, rejection
codes); user, chat, avatar and message ids never become labels — they belong in logs.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.kit.metrics import KitMetrics

#: Telegram calls last from milliseconds (sendMessage) to the long-poll timeout (getUpdates).
TELEGRAM_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
#: Whole trainings as the user lives them: minutes, sometimes an hour or more.
TRAINING_BUCKETS = (30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200, 14400)
#: Exported at 0 from the start: an alert on `increase()` cannot see a series' first sample,
#: and these are rare (a lost update, a tampered invoice) yet must not go unnoticed.
PAYMENT_OUTCOMES = ("credited", "reconciled", "duplicate", "refunded_invalid", "invalid")
ALERTED_PRE_CHECKOUTS = ("forged", "wrong_user")
#: Exported from the start, so the dashboard's likeness row has series before any picture.
LIKENESS_OUTCOMES = ("scored", "no_face", "no_identity", "weak_identity", "timeout", "error")
#: The training check's outcomes (`training/check.py`), exported from the start too.
CHECK_OUTCOMES = ("passed", "poor", "no_face", "failed", "no_identity", "weak_identity")


class BotMetrics(KitMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__("bot", registry)
        r = self.registry
        self.telegram_requests = Counter(
            "aisha_bot_telegram_requests",
            "Bot API calls by method and outcome; every HTTP attempt, retries and 429s included",
            ["method", "outcome"],
            registry=r,
        )
        self.telegram_seconds = Histogram(
            "aisha_bot_telegram_request_duration_seconds",
            "Time of one Bot API call (getUpdates includes its long-poll wait)",
            ["method"],
            registry=r,
            buckets=TELEGRAM_BUCKETS,
        )
        self.updates = Counter(
            "aisha_bot_updates",
            "Telegram updates handled, by update type and outcome (ok, unhandled, error)",
            ["update_type", "outcome"],
            registry=r,
        )
        self.update_seconds = Histogram(
            "aisha_bot_update_handle_seconds",
            "Time to handle one Telegram update",
            ["update_type"],
            registry=r,
        )
        self.users_started = Counter(
            "aisha_bot_users_started", "Users who contacted the bot for the first time", registry=r
        )
        self.avatars_created = Counter(
            "aisha_bot_avatars_created",
            "Avatars created (name, gender and training type chosen)",
            ["training_type"],
            registry=r,
        )
        self.photos_accepted = Counter(
            "aisha_bot_photos_accepted", "Training photos validated and stored", registry=r
        )
        self.photos_rejected = Counter(
            "aisha_bot_photos_rejected",
            "Training photos refused, by reason code (the user is told which)",
            ["reason"],
            registry=r,
        )
        self.trainings_requested = Counter(
            "aisha_bot_trainings_requested",
            "Trainings the user started (attempt = first, retry, or redo: the free retrain a poor "
            "likeness check offered)",
            ["training_type", "attempt"],
            registry=r,
        )
        self.trainings_finished = Counter(
            "aisha_bot_trainings_finished",
            "Trainings whose end the user was shown (completed, failed, cancelled)",
            ["training_type", "outcome"],
            registry=r,
        )
        self.training_e2e_seconds = Histogram(
            "aisha_bot_training_end_to_end_seconds",
            "From the user pressing Start to the bot showing the end of the training",
            ["training_type", "outcome"],
            registry=r,
            buckets=TRAINING_BUCKETS,
        )
        self.progress_edits = Counter(
            "aisha_bot_progress_edits",
            "Edits of live messages (photo counter, training progress) by outcome: sent, "
            "coalesced into a queued edit, unchanged (already shown), failed",
            ["outcome"],
            registry=r,
        )
        self.sender_queued = Gauge(
            "aisha_bot_sender_queued_jobs",
            "Outgoing sends/edits waiting for their rate-limit turn",
            registry=r,
        )
        self._billing(r)

    def _billing(self, r: CollectorRegistry) -> None:
        """Money: Stars in, credits out and back. Closed label sets (package ids come from
        config, reasons from `FailureReason` and the checks' own codes)."""
        self.stars_revenue = Counter(
            "aisha_bot_stars_revenue",
            "Telegram Stars received for credit packages (refunded Stars are not subtracted)",
            ["package"],
            registry=r,
        )
        self.payments = Counter(
            "aisha_bot_payments",
            "Stars payments by outcome: credited, duplicate, refunded_invalid, invalid, or "
            "reconciled (credited from getStarTransactions: its update was lost)",
            ["outcome"],
            registry=r,
        )
        self.pre_checkouts = Counter(
            "aisha_bot_pre_checkouts",
            "pre_checkout_query answers by outcome: ok, or why the payload was refused",
            ["outcome"],
            registry=r,
        )
        for outcome in PAYMENT_OUTCOMES:
            self.payments.labels(outcome)
        for outcome in ALERTED_PRE_CHECKOUTS:
            self.pre_checkouts.labels(outcome)
        self.credits_granted = Counter(
            "aisha_bot_credits_granted",
            "Credits added to balances by kind: trial, purchase, promo, admin_grant",
            ["kind"],
            registry=r,
        )
        self.packs_ordered = Counter(
            "aisha_bot_packs_ordered",
            "Packs ordered and charged (one per press that charged), by pack id",
            ["pack"],
            registry=r,
        )
        self.animations_requested = Counter(
            "aisha_bot_animations_requested",
            "Presses that asked for a video of a picture, by outcome: started, already_running,"
            " refused_limit, insufficient_credits, not_found",
            ["outcome"],
            registry=r,
        )
        self.credit_refunds = Counter(
            "aisha_bot_credit_refunds",
            "Jobs whose credits were given back, by job kind and failure reason",
            ["kind", "reason"],
            registry=r,
        )
        self.likeness_scored = Counter(
            "aisha_bot_likeness_pictures",
            "Generated pictures of a portrait avatar by likeness outcome: scored, no_face, "
            "no_identity, weak_identity, timeout, error",
            ["outcome"],
            registry=r,
        )
        for outcome in LIKENESS_OUTCOMES:
            self.likeness_scored.labels(outcome)
        self.likeness_retries = Counter(
            "aisha_bot_likeness_retries",
            "Generations whose weak pictures were re-drawn once, free, with a new seed",
            registry=r,
        )
        self.likeness_percent = Histogram(
            "aisha_bot_likeness_percent",
            "Likeness score (0-100) of each scored picture to its avatar's reference identity",
            registry=r,
            buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100),
        )
        self.training_checks = Counter(
            "aisha_bot_training_checks",
            "Finished portrait trainings by likeness check outcome: passed, poor, no_face "
            "(no test portrait showed a face), failed (the test portraits were not made), "
            "no_identity, weak_identity (too few clear faces to check against)",
            ["outcome"],
            registry=r,
        )
        for outcome in CHECK_OUTCOMES:
            self.training_checks.labels(outcome)
        self.training_check_decisions = Counter(
            "aisha_bot_training_check_decisions",
            "What users chose after a poor likeness check: redo (free retrain), refund, keep",
            ["decision"],
            registry=r,
        )
        for decision in ("redo", "refund", "keep"):
            self.training_check_decisions.labels(decision)
        self.stars_refunds = Counter(
            "aisha_bot_stars_refunds",
            "Stars purchases refunded through refundStarPayment, by outcome",
            ["outcome"],
            registry=r,
        )
        self.promo_redemptions = Counter(
            "aisha_bot_promo_redemptions",
            "Promo code redemptions by outcome: ok, unknown, expired, used_up, already",
            ["outcome"],
            registry=r,
        )
