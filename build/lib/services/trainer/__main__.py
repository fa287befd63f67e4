"""`python -m services.trainer`."""

import sys

from services.kit.runtime import run_service
from services.trainer import bootstrap
from services.trainer.config import TrainerConfig


def main() -> int:
    return run_service(
        "trainer", TrainerConfig.from_env, bootstrap.run, lambda c: c.common, TrainerConfig.secrets
    )


if __name__ == "__main__":
    sys.exit(main())
