"""Scenario 5: many users' trainings complete at once; the bot must tell every one of them
without ever tripping Telegram's flood control.

All webhooks are posted as fast as the status service takes them (≈ one second), with the
emulator's rate limits ON (30 msg/s overall, 1/s per chat, edits included) and the bot's
sender at its defaults. Checks: 0 × 429, every user told in a new message (the outcome;
the progress message is deleted, which spends no token), delivery rate ≥ 90 % of the
30 msg/s Telegram allows.
"""

from __future__ import annotations

from benchmarks import botrun, seed
from benchmarks.falhooks import Poster
from benchmarks.lab import Lab
from benchmarks.measure import Run, Stopwatch, closed_loop, now
from benchmarks.report import Row
from sandbox.telegram import Limits, TelegramEmulator

NEEDS: tuple[str, ...] = ()
TELEGRAM_RATE = 30.0
TARGET_SHARE = 0.9


async def _once(lab: Lab, emu: TelegramEmulator, poster: Poster, users: int) -> Run:
    ids = seed.new_user_ids(users)
    emu.set_limits_now(enabled=False)  # the progress messages exist before the flood
    messages = await botrun.progress_messages(emu, ids)
    made = await seed.trainings(lab.pool, ids, messages=messages)
    hooks = [lab.signer.completed(t.request_id) for t in made]
    emu.set_limits_now(enabled=True)  # fresh buckets: full bursts, as after a quiet minute
    refused = emu.world.stats["error:429"]
    limited = sum(v for k, v in emu.world.violations.items() if k.startswith("rate_limit"))
    shown = Stopwatch()
    arrivals = botrun.Arrivals(emu, shown)
    started = now()
    for t in made:
        shown.start(t.request_id, started)
        arrivals.watch(t.user_id, t.request_id, kinds=("message",))
    try:

        async def post(i: int) -> None:
            await poster.post(hooks[i])

        ingest = await closed_loop(post, users, 64)
        await shown.wait(users, users / TELEGRAM_RATE * 2 + 60, "notifications")
    finally:
        await arrivals.close()
    arrived = sorted(shown.stopped.values())
    limited_now = sum(v for k, v in emu.world.violations.items() if k.startswith("rate_limit"))
    return Run(  # the pace: deliveries after the first, over the time they took
        len(arrived) - 1,
        arrived[-1] - arrived[0],
        shown.latencies_ms(),
        {
            "notified": len(arrived),
            "total_seconds": arrived[-1] - started,
            "ingest_seconds": ingest.seconds,
            "answered_429": emu.world.stats["error:429"] - refused,
            "rate_violations": limited_now - limited,
        },
    )


async def run(lab: Lab, baselines: dict[str, Row]) -> Row:
    sizes = lab.sizes
    await lab.status()
    await lab.purge_training_events()
    row = Row("fanout", "5. Telegram fan-out", "scenario", unit="msg/s")
    async with (
        TelegramEmulator(limits=Limits(enabled=False)) as emu,
        botrun.RunningBot(botrun.bot_config(lab, emu), emu),
        Poster(lab.webhook_url, 64) as poster,
    ):
        for _ in range(sizes.repeats):
            row.runs.append(await _once(lab, emu, poster, sizes.fanout_users))
    await lab.purge_training_events()
    refused = row.extra_max("answered_429")
    row.ratio, row.ratio_of = row.rate / TELEGRAM_RATE, "of Telegram's 30 msg/s"
    row.target = f"0 × 429; all notified; ≥ {TARGET_SHARE:.0%} of 30 msg/s"
    everyone = all(r.extra["notified"] == sizes.fanout_users for r in row.runs)
    ok = refused == 0 and everyone and row.ratio >= TARGET_SHARE
    notified = "all" if everyone else "NOT all"
    row.judge(ok, f"{refused:.0f} × 429; {notified} notified; {row.ratio:.2f}×")
    row.notes.append(
        f"{sizes.fanout_users} users per run, webhooks all in within "
        f"{row.extra('ingest_seconds'):.1f} s, last user told after "
        f"{row.extra('total_seconds'):.1f} s; emulator limits on (30/s burst 30, 1/s per chat "
        "burst 3, edits counted); bot sender defaults. Rate = pace between the first and the "
        "last notification; latency = webhook burst → edit shown (queueing behind the limit)"
    )
    return row
