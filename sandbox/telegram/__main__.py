"""Run the Telegram emulator standalone: `python -m sandbox.telegram --port 8081 --token-any`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from sandbox.telegram.rules import Limits
from sandbox.telegram.server import TelegramEmulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox.telegram", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    tokens = parser.add_mutually_exclusive_group()
    tokens.add_argument("--token", help="accept only this bot token")
    tokens.add_argument("--token-any", action="store_true", help="accept any token (default)")
    parser.add_argument("--bot-username", default="aisha_sandbox_bot")
    parser.add_argument("--no-rate-limits", action="store_true", help="disable flood control")
    parser.add_argument("--callback-timeout", type=float, default=15.0)
    parser.add_argument(
        "--no-not-modified",
        action="store_true",
        help='an edit that changes nothing succeeds instead of 400 "message is not modified"',
    )
    parser.add_argument(
        "--pre-checkout-timeout", type=float, default=10.0, help="answerPreCheckoutQuery deadline"
    )
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="keep users, chats and files here across runs"
    )
    return parser


async def _run(args: argparse.Namespace) -> None:
    limits = Limits(
        enabled=not args.no_rate_limits,
        callback_timeout=args.callback_timeout,
        pre_checkout_timeout=args.pre_checkout_timeout,
        not_modified=not args.no_not_modified,
    )
    emulator = TelegramEmulator(
        token=None if args.token_any else args.token,
        bot_username=args.bot_username,
        limits=limits,
        state_dir=args.state_dir,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await emulator.start(args.host, args.port)
    print(
        f"Telegram emulator: Bot API at {emulator.base_url}, web chat at {emulator.web_url}",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await emulator.stop()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    asyncio.run(_run(_parser().parse_args()))


if __name__ == "__main__":
    main()
