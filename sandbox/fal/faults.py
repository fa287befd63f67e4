"""Fault rules: which requests or jobs misbehave, and how."""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from typing import Any

# Job faults are attached to a job at submit time.
JOB_FAULTS = frozenset(
    {
        "job_failed",  # the job ends COMPLETED with an error; result fetch raises
        "nsfw",  # generation: has_nsfw_concepts true, images black
        "other_face",  # generation: the pictures show someone else (`file`, default a stranger)
        "url_expiry",  # result files answer `status` (404) after `seconds`
        "webhook_lost",  # no webhook is ever sent
        "webhook_duplicate",  # the webhook is delivered twice
        "webhook_late",  # the webhook is delivered `seconds` after completion
        "webhook_out_of_order",  # held until another job's webhook went out, then replayed
        "webhook_bad_signature",  # signed with a key that is not in the JWKS
        "webhook_stale_timestamp",  # timestamp `seconds` (600) in the past, validly signed
        "result_expired",  # the result answers 404 `seconds` (0) after completion
        "cancel_ignored",  # a cancel is answered 202, but the app runs to its end
    }
)
# HTTP faults hit requests of one operation.
HTTP_FAULTS = frozenset(
    {
        "http_error",  # answer `status` (500) with a FAL-like error body (or `body`)
        "hang",  # hold the request `seconds` (30) before handling it
        "status_unknown",  # a status answer with `status` (a name FAL may add) and `fields`
    }
)
OPERATIONS = frozenset(
    {"submit", "status", "result", "cancel", "run", "token", "upload", "file", "jwks"}
)
FAULT_NAMES = JOB_FAULTS | HTTP_FAULTS


@dataclass(slots=True)
class FaultRule:
    """One rule. Matching fields left as None match everything."""

    id: int
    name: str
    app_id: str | None = None  # prefix of the endpoint id, e.g. "fal-ai/flux-lora"
    contains: str | None = None  # substring of the job input JSON (e.g. a trigger phrase)
    op: str | None = None  # HTTP faults: the operation
    times: int | None = None  # how many more hits; None = forever
    params: dict[str, Any] = field(default_factory=dict)
    hits: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def param(self, key: str, default: Any) -> Any:
        return self.params.get(key, default)


class FaultBook:
    """Holds the rules and hands out hits."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(
        self,
        name: str,
        *,
        app_id: str | None = None,
        contains: str | None = None,
        op: str | None = None,
        times: int | None = None,
        **params: Any,
    ) -> FaultRule:
        """Add a rule; `times=N` limits it to the next N matching jobs/requests."""
        if name not in FAULT_NAMES:
            raise ValueError(f"unknown fault {name!r}; known: {sorted(FAULT_NAMES)}")
        if op is not None and op not in OPERATIONS:
            raise ValueError(f"unknown operation {op!r}; known: {sorted(OPERATIONS)}")
        if name in HTTP_FAULTS and op is None:
            raise ValueError(f"fault {name!r} needs op= one of {sorted(OPERATIONS)}")
        rule = FaultRule(next(self._ids), name, app_id, contains, op, times, dict(params))
        self._rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        before = len(self._rules)
        self._rules = [r for r in self._rules if r.id != rule_id]
        return len(self._rules) != before

    def clear(self) -> None:
        self._rules.clear()

    @property
    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def _take(self, rule: FaultRule) -> FaultRule:
        rule.hits += 1
        if rule.times is not None:
            rule.times -= 1
            if rule.times <= 0:
                self._rules.remove(rule)
        return rule

    def for_job(self, app_id: str, arguments: Any) -> dict[str, FaultRule]:
        """Consume the job faults matching a new job; name → rule."""
        text = json.dumps(arguments, sort_keys=True, default=str)
        found: dict[str, FaultRule] = {}
        for rule in list(self._rules):
            if rule.name not in JOB_FAULTS or rule.name in found:
                continue
            if rule.app_id is not None and not app_id.startswith(rule.app_id):
                continue
            if rule.contains is not None and rule.contains not in text:
                continue
            found[rule.name] = self._take(rule)
        return found

    def for_request(self, op: str, app_id: str | None) -> FaultRule | None:
        """Consume the first HTTP fault matching this operation, if any."""
        for rule in list(self._rules):
            if rule.name not in HTTP_FAULTS or rule.op != op:
                continue
            if rule.app_id is not None and not (app_id or "").startswith(rule.app_id):
                continue
            return self._take(rule)
        return None
