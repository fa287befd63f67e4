"""Renders `docs/events.md` from the contracts: `python -m contracts.catalogue > docs/events.md`.

A test regenerates it and fails when the committed file differs, so the catalogue can
never drift from the code.
"""

from __future__ import annotations

import json
import sys

import msgspec

from contracts.jetstream import CONSUMERS, KV_BUCKETS, OBJECT_BUCKETS, STREAMS
from contracts.registry import DLQ_PREFIX, EVENT_TYPES


def render() -> str:
    lines = [
        "# Events catalogue",
        "",
        "Generated from `contracts/` by `python -m contracts.catalogue > docs/events.md`;",
        "`tests/unit/test_contracts.py` fails when this file drifts from the code.",
        "",
        "Every event is JSON (msgspec) with `type`, `event_id`, `occurred_at` and `version`;",
        "it is published with `Nats-Msg-Id = event_id`, so JetStream drops a republish.",
        f"Poison messages go to `{DLQ_PREFIX}.<subject without 'aisha.'>` in stream `AISHA_DLQ`.",
        "",
        "## Streams",
        "",
        "| stream | subjects | max age | duplicate window |",
        "|---|---|---|---|",
    ]
    for s in STREAMS:
        lines.append(
            f"| `{s.name}` | {', '.join(f'`{x}`' for x in s.subjects)} | "
            f"{s.max_age_seconds // 86400} d | {s.duplicate_window_seconds // 60} min |"
        )
    lines += [
        "",
        "## Durable consumers",
        "",
        "| durable | stream | subjects | max deliver | ack wait |",
        "|---|---|---|---|---|",
    ]
    for c in CONSUMERS:
        lines.append(
            f"| `{c.durable}` | `{c.stream}` | {', '.join(f'`{x}`' for x in c.filter_subjects)} "
            f"| {c.max_deliver} | {c.ack_wait_seconds:g} s |"
        )
    lines += ["", "## Buckets", "", "| kind | bucket | TTL | purpose |", "|---|---|---|---|"]
    for b in KV_BUCKETS:
        ttl = f"{b.ttl_seconds // 86400} d" if b.ttl_seconds else "none"
        lines.append(f"| KV | `{b.name}` | {ttl} | {b.description} |")
    for b in OBJECT_BUCKETS:
        lines.append(f"| Object Store | `{b.name}` | none | {b.description} |")
    lines += ["", "## Events", ""]
    for cls in EVENT_TYPES:
        schema = msgspec.json.schema(cls)
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        lines += [
            f"### `{cls.subject}`",
            "",
            f"{doc} (`{cls.__name__}`, schema version {cls.schema})",
            "",
            "```json",
            json.dumps(schema, indent=2, sort_keys=True),
            "```",
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
