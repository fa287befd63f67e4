"""`python -m services.status`."""

import gc
import sys

from services.kit.runtime import run_service
from services.status import bootstrap
from services.status.config import StatusConfig


def main() -> int:
    # Everything imported so far lives as long as the process: keep it out of the cyclic
    # collector's full passes, which otherwise stall the event loop for tens of
    # milliseconds (a webhook's whole latency budget) every time they walk it.
    gc.freeze()
    return run_service(
        "status", StatusConfig.from_env, bootstrap.run, lambda c: c.common, StatusConfig.secrets
    )


if __name__ == "__main__":
    sys.exit(main())
