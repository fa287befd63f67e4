"""`python -m services.status`."""

import sys

from services.kit.runtime import run_service
from services.status import bootstrap
from services.status.config import StatusConfig


def main() -> int:
    return run_service(
        "status", StatusConfig.from_env, bootstrap.run, lambda c: c.common, StatusConfig.secrets
    )


if __name__ == "__main__":
    sys.exit(main())
