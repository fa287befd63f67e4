"""Status service configuration: webhook verification, polling cadence and budget."""

from __future__ import annotations

from dataclasses import dataclass

from services.kit.config import CommonConfig, ConfigError, Env
from services.status.intake import READ_TIMEOUT_SECONDS
from services.status.retention import retention_hours

DEFAULT_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"


@dataclass(frozen=True, kw_only=True)
class StatusConfig:
    common: CommonConfig
    fal_key: str
    jwks_url: str
    webhook_tolerance_seconds: int
    webhook_max_bytes: int
    poll_interval_seconds: float
    poll_batch: int
    fal_requests_per_second: float
    image_fetch_attempts: int = 3
    image_fetch_timeout_seconds: float = 30.0
    webhook_retention_hours: float = 72.0
    webhook_read_timeout_seconds: float = READ_TIMEOUT_SECONDS

    @classmethod
    def from_env(cls, env: Env) -> StatusConfig:
        fal_key = env.text("FAL_KEY")
        if ":" not in fal_key:
            raise ConfigError("FAL_KEY: expected '<key id>:<key secret>' as issued by FAL")
        read_timeout = env.number("FAL_WEBHOOK_READ_TIMEOUT_SECONDS", READ_TIMEOUT_SECONDS)
        if read_timeout <= 0:
            raise ConfigError("FAL_WEBHOOK_READ_TIMEOUT_SECONDS: expected a positive number")
        return cls(
            common=CommonConfig.from_env(env, "status", 8083),
            fal_key=fal_key,
            jwks_url=env.url("FAL_JWKS_URL", ("https", "http"), DEFAULT_JWKS_URL),
            webhook_tolerance_seconds=env.integer("FAL_WEBHOOK_TOLERANCE_SECONDS", 300),
            webhook_max_bytes=env.integer("FAL_WEBHOOK_MAX_BYTES", 1024 * 1024, minimum=1024),
            poll_interval_seconds=env.number("STATUS_POLL_INTERVAL_SECONDS", 5.0),
            poll_batch=env.integer("STATUS_POLL_BATCH", 50, minimum=1),
            fal_requests_per_second=env.number("STATUS_FAL_REQUESTS_PER_SECOND", 10.0),
            image_fetch_attempts=env.integer("STATUS_IMAGE_FETCH_ATTEMPTS", 3, minimum=1),
            image_fetch_timeout_seconds=env.number("STATUS_IMAGE_FETCH_TIMEOUT_SECONDS", 30.0),
            webhook_retention_hours=retention_hours(env),
            webhook_read_timeout_seconds=read_timeout,
        )

    def secrets(self) -> tuple[str, ...]:
        return (self.fal_key, self.fal_key.partition(":")[2], *self.common.secrets())
