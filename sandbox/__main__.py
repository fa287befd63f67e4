"""`python -m sandbox` (what `./scripts/run` starts): the whole product locally."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from sandbox.stack import Stack, StackError, StackOptions


def _options(argv: list[str]) -> StackOptions:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument(
        "--state-dir", type=Path, default=Path(env.get("AISHA_STATE_DIR", ".state"))
    )
    parser.add_argument(
        "--webchat-port", type=int, default=int(env.get("AISHA_WEBCHAT_PORT", 8080))
    )
    parser.add_argument(
        "--nats-port",
        type=int,
        default=int(env.get("AISHA_NATS_PORT", 4222)),
        help="embedded NATS port (a free one when taken)",
    )
    parser.add_argument(
        "--training-seconds",
        type=float,
        default=float(env.get("AISHA_FAL_TRAINING_SECONDS", 60)),
        help="how long an emulated training takes (the demo default shows live progress)",
    )
    args = parser.parse_args(argv)
    return StackOptions(
        state_dir=args.state_dir.resolve(),
        webchat_port=args.webchat_port,
        nats_port=args.nats_port,
        fal_training_seconds=args.training_seconds,
    )


async def _main(options: StackOptions) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stack = Stack(options)
    starting = asyncio.create_task(stack.start())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait([starting, stopper], return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # Ctrl-C during start-up: undo what was started
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        return 130
    stopper.cancel()
    try:
        starting.result()
    except StackError as exc:
        print(f"aisha: {exc}", file=sys.stderr)
        return 2
    print("\nAisha is running. Open the web chat and talk to the bot:\n", flush=True)
    for name, url in stack.urls.items():
        print(f"  {name:<22} {url}", flush=True)
    print("\nCtrl-C stops everything; data stays in", options.state_dir, flush=True)
    try:
        assert stack.supervisor is not None
        await stack.supervisor.watch(stop)
        await stop.wait()
    finally:
        print("\nstopping…", flush=True)
        await stack.stop()
    return 0


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return asyncio.run(_main(_options(sys.argv[1:])))


if __name__ == "__main__":
    sys.exit(main())
