"""Run the FAL emulator standalone: `python -m sandbox.fal --proxy-port 8443`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path

from sandbox.fal.emulator import FalEmulator
from sandbox.fal.endpoints import LOG_PROFILES, AppSettings
from sandbox.fal.webhooks import Segmenting


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox.fal", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--proxy-port", type=int, default=8443)
    parser.add_argument("--control-port", type=int, default=8090)
    parser.add_argument("--tls-port", type=int, default=0)
    parser.add_argument("--training-seconds", type=float, default=90.0)
    parser.add_argument("--generation-seconds", type=float, default=5.0)
    parser.add_argument("--queue-seconds", type=float, default=2.0)
    parser.add_argument("--min-training-images", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--log-profile", choices=sorted(LOG_PROFILES), default=AppSettings().log_profile
    )
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument(
        "--lifetime-scale", type=float, default=1.0, help="multiplies every file lifetime"
    )
    parser.add_argument("--fal-key", default="sandbox-key-id:sandbox-key-secret")
    parser.add_argument("--state-dir", type=Path, default=None, help="TLS certificates")
    parser.add_argument(
        "--persist-dir", type=Path, default=None, help="keep storage and jobs here across runs"
    )
    wire = Segmenting.from_env()  # FAL_EMU_WEBHOOK_SEGMENT_BYTES / _PAUSE_MS / _CHUNKED
    parser.add_argument("--webhook-segment-bytes", type=int, default=wire.size)
    parser.add_argument("--webhook-segment-pause-ms", type=float, default=wire.pause_seconds * 1000)
    parser.add_argument(
        "--webhook-chunked", action=argparse.BooleanOptionalAction, default=wire.chunked
    )
    return parser


async def _main(args: argparse.Namespace) -> None:
    emulator = FalEmulator(
        training_seconds=args.training_seconds,
        generation_seconds=args.generation_seconds,
        queue_seconds=args.queue_seconds,
        min_training_images=args.min_training_images,
        concurrency=args.concurrency,
        time_scale=args.time_scale,
        lifetime_scale=args.lifetime_scale,
        fal_key=args.fal_key,
        webhook_segmenting=Segmenting(
            args.webhook_segment_bytes, args.webhook_segment_pause_ms / 1000, args.webhook_chunked
        ),
        state_dir=args.state_dir,
        persist_dir=args.persist_dir,
        host=args.host,
        proxy_port=args.proxy_port,
        control_port=args.control_port,
        tls_port=args.tls_port,
    )
    emulator.configure(log_profile=args.log_profile)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await emulator.start()
    try:
        print(f"FAL emulator up; control API at {emulator.control_url}/_emulator/info", flush=True)
        print("Environment for a fal-client process:", flush=True)
        for key, value in emulator.client_env().items():
            print(f"export {key}={value}", flush=True)
        await stop.wait()
    finally:
        await emulator.stop()


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(_main(_parser().parse_args()))


if __name__ == "__main__":
    main()
