"""Trainer configuration: FAL credentials, webhook base URL, limits."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.jetstream import TRAINER_REQUESTS, ConsumerSpec
from services.kit.config import CommonConfig, ConfigError, Env


@dataclass(frozen=True, kw_only=True)
class TrainerConfig:
    common: CommonConfig
    fal_key: str
    public_base_url: str
    fal_test_mode: bool
    max_concurrent_trainings: int
    daily_spend_limit_usd: float
    training_cost_per_1000_steps_usd: float
    reconcile_minutes: float = 90.0
    #: How long a picture job whose submit outcome is unknown waits for its webhook before
    #: it is failed and refunded (a picture's webhook comes within seconds of the job).
    generation_reconcile_seconds: float = 600.0
    generation_lora_scale: float = 1.0
    generation_cost_per_megapixel_usd: float = 0.035
    describe_timeout_seconds: float = 40.0
    #: fal-ai/clarity-upscaler's price per (output) megapixel.
    upscale_cost_per_megapixel_usd: float = 0.03
    #: fal-ai/kling-video/v2.1/standard/image-to-video's price of a 5-second clip.
    animation_cost_5s_usd: float = 0.28
    #: How often the waiting line looks for a free training slot (`waiting_line.py`).
    waiting_line_seconds: float = 2.0

    @property
    def webhook_url(self) -> str:
        return f"{self.public_base_url.rstrip('/')}/fal/webhook"

    @classmethod
    def from_env(cls, env: Env) -> TrainerConfig:
        fal_key = env.text("FAL_KEY")
        if ":" not in fal_key:
            raise ConfigError("FAL_KEY: expected '<key id>:<key secret>' as issued by FAL")
        test_mode = env.flag("FAL_TRAINING_TEST_MODE", False)
        if test_mode and not (env.optional("HTTPS_PROXY") and env.optional("SSL_CERT_FILE")):
            raise ConfigError(
                "FAL_TRAINING_TEST_MODE: true needs the FAL emulator's HTTPS_PROXY and "
                "SSL_CERT_FILE (start the stack with ./scripts/run)"
            )
        return cls(
            common=CommonConfig.from_env(env, "trainer", 8082),
            fal_key=fal_key,
            public_base_url=env.url("PUBLIC_BASE_URL", ("http", "https")),
            fal_test_mode=test_mode,
            max_concurrent_trainings=env.integer("TRAINER_MAX_CONCURRENT", 4, minimum=1),
            daily_spend_limit_usd=env.number("TRAINER_DAILY_SPEND_LIMIT_USD", 100.0),
            training_cost_per_1000_steps_usd=env.number("TRAINER_COST_PER_1000_STEPS_USD", 2.0),
            reconcile_minutes=_reconcile_minutes(env),
            generation_reconcile_seconds=_generation_reconcile(env),
            generation_lora_scale=_lora_scale(env),
            generation_cost_per_megapixel_usd=env.number(
                "GENERATION_COST_PER_MEGAPIXEL_USD", 0.035
            ),
            describe_timeout_seconds=_describe_timeout(env),
            upscale_cost_per_megapixel_usd=env.number("UPSCALE_COST_PER_MEGAPIXEL_USD", 0.03),
            animation_cost_5s_usd=env.number("ANIMATION_COST_5S_USD", 0.28),
            waiting_line_seconds=env.number("TRAINER_WAITING_LINE_SECONDS", 2.0),
        )

    def secrets(self) -> tuple[str, ...]:
        return (self.fal_key, self.fal_key.partition(":")[2], *self.common.secrets())


def _lora_scale(env: Env) -> float:
    """FLUX LoRA strength: 0 ignores the avatar, above ~2 the picture falls apart."""
    value = env.number("GENERATION_LORA_SCALE", 1.0)
    if not 0.0 < value <= 2.0:
        raise ConfigError(f"GENERATION_LORA_SCALE: expected a number in (0, 2], got {value}")
    return value


def _generation_reconcile(env: Env) -> float:
    """Past the request consumer's last delivery (about 2 minutes) the job fails anyway."""
    value = env.number("TRAINER_GENERATION_RECONCILE_SECONDS", 600.0)
    if value < 5.0:
        raise ConfigError(f"TRAINER_GENERATION_RECONCILE_SECONDS: expected ≥ 5, got {value}")
    return value


def _describe_timeout(env: Env) -> float:
    """A caption is awaited inside one delivery, so it must end before the ack wait (60 s)."""
    value = env.number("TRAINER_DESCRIBE_TIMEOUT_SECONDS", 40.0)
    if not 1.0 <= value <= 50.0:
        raise ConfigError(f"TRAINER_DESCRIBE_TIMEOUT_SECONDS: expected 1..50, got {value}")
    return value


def _reconcile_minutes(env: Env) -> float:
    """How long a request orphaned by a crash waits for its job's webhook (decisions.md).

    It waits by nak'ing, so the request consumer's deliveries must outlast the window.
    """
    minutes = env.number("TRAINER_RECONCILE_MINUTES", 90.0)
    horizon = retry_horizon_seconds(TRAINER_REQUESTS) / 60
    if not 0 < minutes <= horizon:
        raise ConfigError(
            f"TRAINER_RECONCILE_MINUTES: expected minutes in (0, {horizon:.0f}], the retry "
            f"horizon of the {TRAINER_REQUESTS.durable} consumer; got {minutes:g}"
        )
    return minutes


def retry_horizon_seconds(spec: ConsumerSpec) -> float:
    """Sum of the nak delays before the last delivery: how long a handler can keep waiting."""
    backoff = spec.backoff_seconds
    return sum(backoff[min(n, len(backoff) - 1)] for n in range(spec.max_deliver - 1))
