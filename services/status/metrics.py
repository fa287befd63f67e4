"""Status metrics: webhooks, polls, trainings and generations finished, image fetches."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.kit.metrics import KitMetrics


class StatusMetrics(KitMetrics):
    def __init__(self) -> None:
        super().__init__("status")
        r = self.registry
        self.webhooks = Counter(
            "aisha_status_webhooks", "FAL webhooks received", ["outcome"], registry=r
        )
        self.polls = Counter("aisha_status_polls", "FAL status polls", ["outcome"], registry=r)
        self.jwks_fetches = Counter(
            "aisha_status_jwks_fetches",
            "Fetches of FAL's webhook keys: cache expired, or no cached key verified",
            ["reason", "outcome"],
            registry=r,
        )
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
        self.fal_requests = Counter(
            "aisha_status_fal_requests",
            "Calls to FAL (status, result) by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.fal_seconds = Histogram(
            "aisha_status_fal_request_duration_seconds",
            "Time of one call to FAL",
            ["operation"],
            registry=r,
        )
        self.trainings_in_flight = Gauge(
            "aisha_status_trainings_in_flight",
            "Trainings submitted to FAL and not finished (whole system, not this replica)",
            ["training_type"],
            registry=r,
        )
        self.training_oldest_seconds = Gauge(
            "aisha_status_training_oldest_in_flight_seconds",
            "Age of the oldest unfinished training since its submission (0 when none)",
            registry=r,
        )
        self.generations_finished = Counter(
            "aisha_status_generations_finished",
            "Generations that reached an end state",
            ["outcome"],
            registry=r,
        )
        self.generation_seconds = Histogram(
            "aisha_status_generation_duration_seconds",
            "From submission to stored results (or failure)",
            registry=r,
            buckets=(2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600),
        )
        self.image_fetches = Counter(
            "aisha_status_image_fetches",
            "Downloads of FAL result images",
            ["outcome"],
            registry=r,
        )
        self.training_files = Counter(
            "aisha_status_training_files",
            "What a finished training left, kept: the LoRA copied (lora), the logs fetched "
            "(logs); outcome ok, gone (FAL no longer has it) or error (tried again later)",
            ["kind", "outcome"],
            registry=r,
        )
        self.generated_images = Counter(
            "aisha_status_generated_images",
            "Result images stored, by the safety checker's verdict",
            ["nsfw"],
            registry=r,
        )
