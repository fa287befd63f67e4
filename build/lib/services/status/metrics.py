"""Status metrics: webhooks by outcome, polls, trainings finished by type and outcome."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from services.kit.metrics import KitMetrics


class StatusMetrics(KitMetrics):
    def __init__(self) -> None:
        super().__init__("status")
        r = self.registry
        self.webhooks = Counter(
            "aisha_status_webhooks", "FAL webhooks received", ["outcome"], registry=r
        )
        self.polls = Counter("aisha_status_polls", "FAL status polls", ["outcome"], registry=r)
        self.trainings_finished = Counter(
            "aisha_status_trainings_finished",
            "Trainings that reached an end state",
            ["training_type", "outcome"],
            registry=r,
        )
        self.training_seconds = Histogram(
            "aisha_status_training_duration_seconds",
            "From start (or submission) to the end",
            ["training_type"],
            registry=r,
            buckets=(5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200),
        )
