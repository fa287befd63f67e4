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
            "Trainings the user started (attempt = first or retry)",
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
