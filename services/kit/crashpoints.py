"""Deliberate process death at the dangerous moments, so the fault suite can prove recovery.

`crashpoint("trainer.after_fal_submit")` does nothing unless the environment variable
`AISHA_CRASHPOINTS` (comma-separated) names that point; then the process ends at once with
`os._exit(137)` — the exit status of `kill -9`, and just as abrupt: no `finally`, no
`atexit`, no ack, no commit, no flush. `name@N` dies on the N-th hit instead of the first.

Why not a real SIGKILL from outside? A signal lands at a random instruction; a crash point
lands exactly between "FAL accepted the job" and "we committed that", which is where the
design has to be right. The variable is read once, on the first call, so an unarmed process
pays one dictionary lookup on an empty dict per call. Every point is listed in
`POINTS` and documented in `docs/reliability.md`.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

ENV = "AISHA_CRASHPOINTS"
EXIT_CODE = 137

#: Every crash point placed in the code, with the moment it stands for.
POINTS: dict[str, str] = {
    "trainer.after_fal_submit": "FAL accepted the training; the ledger still says submitting",
    "trainer.after_commit": "submission committed (ledger, avatar, outbox); request not acked",
    "status.after_webhook_recorded": (
        "webhook body stored (for a running training: stored and applied in one commit);"
        " event not yet published, FAL not answered"
    ),
    "status.before_finish_commit": "final outcome written in an open transaction, not committed",
    "trainer.after_generation_submit": (
        "FAL accepted a picture job (picture, pack picture, upscale, reference, animation);"
        " ledger not committed"
    ),
    "status.before_generation_finish_commit": (
        "a picture job's results copied to the Object Store and its outcome written in an"
        " open transaction, not committed"
    ),
    "bot.after_pictures_sent": "a picture job's results sent to the chat; delivery not recorded",
    "bot.after_training_request_commit": "avatar moved to training and request queued; no reply",
    "outbox.after_publish_before_mark": "events published to JetStream; rows not marked sent",
    "consumer.after_handler_before_ack": "handler committed its effects; message not acked",
}

_armed: dict[str, int] | None = None
_hits: Counter[str] = Counter()


def parse(spec: str) -> dict[str, int]:
    """`"a, b@3"` → `{"a": 1, "b": 3}`; unknown names are reported and ignored."""
    armed: dict[str, int] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        name, _, nth = item.partition("@")
        name = name.strip()
        if name not in POINTS:
            sys.stderr.write(f"{ENV}: unknown crash point {name!r} ignored\n")
            continue
        try:
            armed[name] = max(1, int(nth)) if nth else 1
        except ValueError:
            sys.stderr.write(f"{ENV}: bad hit count in {item!r}; expected name@N\n")
    return armed


def crashpoint(name: str) -> None:
    """Die here (exit 137, no cleanup) if `AISHA_CRASHPOINTS` arms `name`; else nothing."""
    global _armed
    if _armed is None:
        _armed = parse(os.environ.get(ENV, ""))
    nth = _armed.get(name)
    if nth is None:
        return
    _hits[name] += 1
    if _hits[name] >= nth:
        # os.write: unbuffered, so the line reaches the log even though nothing is flushed.
        os.write(2, f"crashpoint {name} hit {_hits[name]}: exiting {EXIT_CODE}\n".encode())
        os._exit(EXIT_CODE)
