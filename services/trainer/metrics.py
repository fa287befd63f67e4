"""Trainer metrics: submissions by type or endpoint, FAL calls by outcome, captions, spend."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.kit.metrics import KitMetrics


class TrainerMetrics(KitMetrics):
    def __init__(self) -> None:
        super().__init__("trainer")
        r = self.registry
        self.trainings_submitted = Counter(
            "aisha_trainer_trainings_submitted",
            "Trainings accepted by FAL",
            ["training_type"],
            registry=r,
        )
        self.trainings_failed_to_submit = Counter(
            "aisha_trainer_trainings_not_submitted",
            "Trainings refused before or by FAL",
            ["training_type", "reason"],
            registry=r,
        )
        self.duplicate_requests = Counter(
            "aisha_trainer_duplicate_requests",
            "Training requests for an attempt that was already submitted (not resubmitted)",
            registry=r,
        )
        self.orphans = Counter(
            "aisha_trainer_orphans",
            "Redelivered requests whose submission outcome was unknown (a crash after FAL"
            " answered): adopted from its webhook, waiting for one, or given up",
            ["outcome"],
            registry=r,
        )
        self.fal_requests = Counter(
            "aisha_trainer_fal_requests", "Calls to FAL", ["endpoint", "outcome"], registry=r
        )
        self.fal_seconds = Histogram(
            "aisha_trainer_fal_request_duration_seconds",
            "Time of one call to FAL (submit, upload, cancel)",
            ["operation"],
            registry=r,
        )
        self.training_submit_delay = Histogram(
            "aisha_trainer_training_submit_delay_seconds",
            "From the user's request to FAL accepting the job (waits for a free slot included)",
            ["training_type"],
            registry=r,
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600),
        )
        self.daily_spend_limit = Gauge(
            "aisha_trainer_daily_spend_limit_usd",
            "TRAINER_DAILY_SPEND_LIMIT_USD: past this 24 h estimate new jobs are refused",
            registry=r,
        )
        self.generations_submitted = Counter(
            "aisha_trainer_generations_submitted",
            "Generation jobs accepted by FAL, by endpoint and kind (generation, upscale...)",
            ["endpoint", "kind"],
            registry=r,
        )
        self.generations_not_submitted = Counter(
            "aisha_trainer_generations_not_submitted",
            "Generations refused before or by FAL",
            ["reason"],
            registry=r,
        )
        self.duplicate_generation_requests = Counter(
            "aisha_trainer_duplicate_generation_requests",
            "Generation requests already submitted (not resubmitted)",
            registry=r,
        )
        self.describes = Counter(
            "aisha_trainer_describes",
            "Photo-to-prompt captions by outcome",
            ["outcome"],
            registry=r,
        )
        self.unanswered_submits = Counter(
            "aisha_trainer_generation_submits_unanswered",
            "Generation submits FAL may have queued without answering (not resubmitted)",
            registry=r,
        )
        self.credits_charged = Counter(
            "aisha_trainer_credits_charged",
            "Credits debited from users when their jobs were reserved for FAL",
            ["kind"],
            registry=r,
        )
        self.charges_refused = Counter(
            "aisha_trainer_charges_refused",
            "Jobs refused before FAL because the user's credits could not pay for them",
            ["kind"],
            registry=r,
        )
        self.cancels = Counter(
            "aisha_trainer_fal_cancels",
            "FAL's answers to our cancels: requested (202), already_completed (400), not_found",
            ["outcome"],
            registry=r,
        )
        self.spend_usd = Counter(
            "aisha_trainer_estimated_spend_usd",
            "Estimated FAL spend in US dollars",
            ["kind"],
            registry=r,
        )
