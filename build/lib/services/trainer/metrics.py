"""Trainer metrics: submissions by type or endpoint, FAL calls by outcome, captions, spend."""

from __future__ import annotations

from prometheus_client import Counter

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
            ["reason"],
            registry=r,
        )
        self.duplicate_requests = Counter(
            "aisha_trainer_duplicate_requests",
            "Training requests for an attempt that was already submitted (not resubmitted)",
            registry=r,
        )
        self.fal_requests = Counter(
            "aisha_trainer_fal_requests", "Calls to FAL", ["endpoint", "outcome"], registry=r
        )
        self.generations_submitted = Counter(
            "aisha_trainer_generations_submitted",
            "Generations accepted by FAL",
            ["endpoint"],
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
        self.spend_usd = Counter(
            "aisha_trainer_estimated_spend_usd",
            "Estimated FAL spend in US dollars",
            ["kind"],
            registry=r,
        )
