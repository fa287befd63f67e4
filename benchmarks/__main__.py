"""`python -m benchmarks [--quick] [--json out.json] [--only name ...] [--profile DIR]`."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from pathlib import Path

from benchmarks import harness


def parse(argv: list[str]) -> harness.Options:
    known = ", ".join([*harness.BASELINES, *harness.SCENARIOS])
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Scenarios on the embedded stack, with raw baselines from the same run.",
    )
    parser.add_argument("--quick", action="store_true", help="one tiny run of each (CI)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help=f"repeatable; one of {known}"
    )
    parser.add_argument("--repeats", type=int, help="repetitions of every measurement")
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="pyinstrument profiles of harness and status"
    )
    parser.add_argument("--database-url", help="PostgreSQL admin URL (default: embedded)")
    parser.add_argument("--nats-url", help="NATS URL (default: embedded)")
    args = parser.parse_args(argv)
    names = tuple(n for item in args.only for n in item.split(",") if n)
    return harness.Options(
        quick=args.quick,
        only=names,
        json_path=args.json,
        profile_dir=args.profile,
        pg_admin_url=args.database_url,
        nats_url=args.nats_url,
        repeats=args.repeats,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("services.kit.broker").setLevel(logging.ERROR)  # in-process bots' drains
    try:
        options = parse(sys.argv[1:] if argv is None else argv)
        harness.plan(options.only)
    except ValueError as exc:
        print(f"benchmarks: {exc}", file=sys.stderr)
        return 2
    # The harness (and the bot it hosts) keeps everything imported for the whole run: out of
    # the cyclic collector's full passes, which would otherwise pause the load generator and
    # the stopwatches for tens of milliseconds now and then (aiogram's models are a big heap).
    gc.freeze()
    outcome = asyncio.run(_run(options))
    doc = outcome.document
    m = doc["machine"]
    print(
        f"\nAisha benchmarks ({doc['mode']}, {outcome.seconds:.0f} s) on {m['nproc']} × {m['cpu']},"
        f" {m['ram_gib']} GiB RAM, load {m['load_avg']}\n{harness.NOISE}\n"
    )
    print(outcome.table)
    return 1 if any(r.error for r in outcome.rows) else 0


async def _run(options: harness.Options) -> harness.Outcome:
    """SIGTERM cancels the run, so servers and service processes are still stopped."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await harness.run(options)


if __name__ == "__main__":
    sys.exit(main())
