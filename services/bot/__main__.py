"""`python -m services.bot`: read the config, run until SIGTERM, exit cleanly."""

from __future__ import annotations

import sys

from services.bot.app import bootstrap
from services.bot.app.config import BotConfig
from services.kit.runtime import run_service


def main() -> int:
    return run_service(
        "bot",
        BotConfig.from_env,
        bootstrap.run,
        lambda config: config.common,
        lambda config: config.secrets(),
    )


if __name__ == "__main__":
    sys.exit(main())
