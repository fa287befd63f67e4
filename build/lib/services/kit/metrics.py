"""Prometheus metrics every service exports, named `aisha_<service>_...` by convention."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class KitMetrics:
    """The kit's own metrics; services add theirs to the same registry."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None):
        self.service = service
        self.registry = registry or CollectorRegistry()
        p = f"aisha_{service}"
        r = self.registry
        self.events_published = Counter(
            f"{p}_events_published",
            "Events published to JetStream",
            ["subject", "outcome"],
            registry=r,
        )
        self.events_consumed = Counter(
            f"{p}_events_consumed",
            "Events handled by a consumer",
            ["subject", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            f"{p}_dead_letters",
            "Messages moved to the dead-letter subject",
            ["subject", "reason"],
            registry=r,
        )
        self.handle_seconds = Histogram(
            f"{p}_event_handle_seconds",
            "Time to handle one event",
            ["subject"],
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.outbox_backlog = Gauge(
            f"{p}_outbox_backlog", "Outbox rows not yet published", registry=r
        )
        self.consumer_pending = Gauge(
            f"{p}_consumer_pending",
            "Messages not yet delivered to the consumer",
            ["consumer"],
            registry=r,
        )
        self.consumer_ack_pending = Gauge(
            f"{p}_consumer_ack_pending",
            "Delivered messages not yet acked",
            ["consumer"],
            registry=r,
        )
        self.consumer_redelivered = Gauge(
            f"{p}_consumer_redelivered",
            "Messages redelivered at least once",
            ["consumer"],
            registry=r,
        )
        self.ready = Gauge(f"{p}_ready", "1 when the service reports ready", registry=r)
