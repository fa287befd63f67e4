"""BotConfig: required token, its form, webhook mode's extra requirements."""

from __future__ import annotations

import pytest

from services.bot.app.config import BotConfig
from services.kit.config import ConfigError, Env

BASE = {
    "DATABASE_URL": "postgresql://u:p@localhost/db",
    "TELEGRAM_BOT_TOKEN": "123456:abcdefghijk_-XYZ",
}


def load(**extra: str) -> BotConfig:
    return BotConfig.from_env(Env({**BASE, **extra}))


def test_defaults() -> None:
    config = load(ADMIN_IDS="1, 2")
    assert config.telegram_mode == "polling"
    assert config.telegram_api_url == "https://api.telegram.org"
    assert (config.min_photos, config.max_photos) == (10, 20)
    assert config.admin_ids == frozenset({1, 2})
    assert config.common.http_port == 8081
    assert "123456:abcdefghijk_-XYZ" in config.secrets()


@pytest.mark.parametrize("token", ["", "nodigits:abcdefghij", "123456", "12:short"])
def test_bad_tokens_name_the_variable(token: str) -> None:
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN"):
        load(TELEGRAM_BOT_TOKEN=token)


def test_webhook_mode_needs_secret_and_public_url() -> None:
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
        load(TELEGRAM_MODE="webhook", TELEGRAM_WEBHOOK_SECRET="s3cret-value")
    with pytest.raises(ConfigError, match="TELEGRAM_WEBHOOK_SECRET"):
        load(TELEGRAM_MODE="webhook", PUBLIC_BASE_URL="https://bot.example")
    config = load(
        TELEGRAM_MODE="webhook",
        PUBLIC_BASE_URL="https://bot.example/",
        TELEGRAM_WEBHOOK_SECRET="s3cret-value",
    )
    assert config.webhook_url == "https://bot.example/telegram/webhook"
    assert "s3cret-value" in config.secrets()


def test_max_photos_below_min_is_refused() -> None:
    with pytest.raises(ConfigError, match="BOT_MAX_PHOTOS"):
        load(BOT_MIN_PHOTOS="10", BOT_MAX_PHOTOS="5")


def test_stars_reconcile_interval() -> None:
    assert load().stars_reconcile_interval_seconds == 600
    assert load(STARS_RECONCILE_INTERVAL_SECONDS="0").stars_reconcile_interval_seconds == 0
    with pytest.raises(ConfigError, match="STARS_RECONCILE_INTERVAL_SECONDS"):
        load(STARS_RECONCILE_INTERVAL_SECONDS="-1")
