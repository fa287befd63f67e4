"""The bot's typed configuration, validated once at start with messages naming the variable."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from services.bot.app.pricing import Pricing
from services.kit.config import CommonConfig, ConfigError, Env

_TOKEN = re.compile(r"^\d{1,20}:[A-Za-z0-9_-]{8,}$")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{8,256}$")
DEFAULT_API_URL = "https://api.telegram.org"
WEBHOOK_PATH = "/telegram/webhook"


@dataclass(frozen=True, kw_only=True)
class BotConfig:
    """Everything the bot reads from the environment."""

    common: CommonConfig
    telegram_bot_token: str
    telegram_api_url: str = DEFAULT_API_URL
    admin_ids: frozenset[int] = frozenset()
    min_photos: int = 10
    max_photos: int = 20
    telegram_mode: Literal["polling", "webhook"] = "polling"
    telegram_webhook_secret: str | None = None
    public_base_url: str | None = None
    send_rate_global: float = 30.0
    send_rate_chat: float = 1.0
    send_burst_chat: int = 3
    album_window_seconds: float = 0.8
    #: The longest a delivery waits for its pictures' likeness scores (docs/likeness.md).
    likeness_timeout_seconds: float = 5.0
    #: Re-draw a generation's weak pictures once, free (docs/likeness.md).
    likeness_retry: bool = True
    #: Test portraits drawn to check a finished portrait training; 0: no check
    #: (docs/likeness.md, "Training check").
    training_check_pictures: int = 2
    photo_retention_hours: float = 24.0
    retention_interval_seconds: float = 600.0
    max_concurrent_generations: int = 2
    #: How often Telegram's Stars ledger is checked for payments whose update was lost
    #: (`reconcile.py`); 0 = only at start.
    stars_reconcile_interval_seconds: float = 600.0
    fsm_cache_size: int = 10_000
    pricing: Pricing = field(default_factory=Pricing)

    @classmethod
    def from_env(cls, env: Env) -> BotConfig:
        token = env.text("TELEGRAM_BOT_TOKEN")
        if not _TOKEN.match(token):
            raise ConfigError(
                "TELEGRAM_BOT_TOKEN: expected <digits>:<secret> as @BotFather gives it"
            )
        mode = env.text("TELEGRAM_MODE", "polling")
        if mode not in ("polling", "webhook"):
            raise ConfigError(f"TELEGRAM_MODE: expected polling or webhook, got {mode!r}")
        secret = env.optional("TELEGRAM_WEBHOOK_SECRET")
        public = env.url("PUBLIC_BASE_URL", ("https", "http")) if mode == "webhook" else None
        if mode == "webhook" and secret is None:
            raise ConfigError("TELEGRAM_WEBHOOK_SECRET is not set (required in webhook mode)")
        if secret is not None and not _SECRET.match(secret):
            raise ConfigError("TELEGRAM_WEBHOOK_SECRET: expected 8-256 chars of A-Z a-z 0-9 _ -")
        min_photos = env.integer("BOT_MIN_PHOTOS", 10, minimum=1)
        max_photos = env.integer("BOT_MAX_PHOTOS", 20, minimum=1)
        if max_photos < min_photos:
            raise ConfigError(f"BOT_MAX_PHOTOS: must be >= BOT_MIN_PHOTOS ({min_photos})")
        return cls(
            common=CommonConfig.from_env(env, "bot", 8081),
            telegram_bot_token=token,
            telegram_api_url=env.url("TELEGRAM_API_URL", ("https", "http"), DEFAULT_API_URL),
            admin_ids=env.int_set("ADMIN_IDS"),
            min_photos=min_photos,
            max_photos=max_photos,
            telegram_mode="webhook" if mode == "webhook" else "polling",
            telegram_webhook_secret=secret,
            public_base_url=public.rstrip("/") if public else None,
            send_rate_global=env.number("BOT_SEND_RATE_GLOBAL", 30.0),
            send_rate_chat=env.number("BOT_SEND_RATE_CHAT", 1.0),
            send_burst_chat=env.integer("BOT_SEND_BURST_CHAT", 3, minimum=1),
            album_window_seconds=env.number("BOT_ALBUM_WINDOW_SECONDS", 0.8),
            likeness_timeout_seconds=_non_negative(env, "BOT_LIKENESS_TIMEOUT_SECONDS", 5.0),
            likeness_retry=env.flag("BOT_LIKENESS_RETRY", True),
            training_check_pictures=_check_pictures(env),
            photo_retention_hours=_non_negative(env, "BOT_PHOTO_RETENTION_HOURS", 24.0),
            retention_interval_seconds=_non_negative(env, "BOT_RETENTION_INTERVAL_SECONDS", 600.0),
            max_concurrent_generations=env.integer("BOT_MAX_CONCURRENT_GENERATIONS", 2, minimum=1),
            stars_reconcile_interval_seconds=_non_negative(
                env, "STARS_RECONCILE_INTERVAL_SECONDS", 600.0
            ),
            pricing=Pricing.from_env(env),
            fsm_cache_size=env.integer("BOT_FSM_CACHE_SIZE", 10_000, minimum=0),
        )

    @property
    def webhook_url(self) -> str | None:
        return f"{self.public_base_url}{WEBHOOK_PATH}" if self.public_base_url else None

    def secrets(self) -> tuple[str, ...]:
        """Strings the log redactor must never print."""
        extra = (self.telegram_webhook_secret,) if self.telegram_webhook_secret else ()
        token_secret = self.telegram_bot_token.partition(":")[2]
        return (*self.common.secrets(), self.telegram_bot_token, token_secret, *extra)


def _non_negative(env: Env, name: str, default: float) -> float:
    value = env.number(name, default)
    if value < 0:
        raise ConfigError(f"{name}: expected a number >= 0, got {value}")
    return value


def _check_pictures(env: Env) -> int:
    """FAL draws 1-4 pictures a request (`num_images`); 0 turns the check off."""
    value = env.integer("BOT_TRAINING_CHECK_PICTURES", 2, minimum=0)
    if value > 4:
        raise ConfigError("BOT_TRAINING_CHECK_PICTURES: 0 (off) to 4")
    return value
