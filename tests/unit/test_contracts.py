"""Contracts: wire format, registry, JetStream declarations, and the generated catalogue."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

import contracts
from contracts.catalogue import render
from contracts.jetstream import CONSUMERS, STREAMS
from contracts.registry import UnknownSubject

ROOT = Path(__file__).resolve().parents[2]


def _sample(cls: type[contracts.Event]) -> contracts.Event:
    """An instance with every field filled from its JSON schema type."""
    values: dict[str, object] = {}
    for field in msgspec.structs.fields(cls):
        if field.name in {"event_id"}:
            values[field.name] = contracts.new_event_id()
        elif field.name == "occurred_at":
            values[field.name] = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
        elif field.default is not msgspec.NODEFAULT:
            continue
        else:
            values[field.name] = _value_for(field.type)
    return cls(**values)


def _value_for(tp: object) -> object:
    if tp is int:
        return 3
    if tp is str:
        return "x"
    if tp is bool:
        return True
    if isinstance(tp, type) and issubclass(tp, contracts.TrainingType):
        return contracts.TrainingType.STYLE
    if isinstance(tp, type) and issubclass(tp, contracts.FalPriority):
        return contracts.FalPriority.SPEED
    if isinstance(tp, type) and issubclass(tp, contracts.FailureReason):
        return contracts.FailureReason.TIMEOUT
    if getattr(tp, "__origin__", None) is tuple:
        return (
            contracts.GeneratedImage(object_name="o", width=1, height=2, content_type="image/png"),
        )
    return None  # optional fields


@pytest.mark.parametrize("cls", contracts.EVENT_TYPES, ids=lambda c: c.subject)
def test_every_event_round_trips_as_json(cls):
    event = _sample(cls)
    data = contracts.encode(event)
    decoded = contracts.decode(cls.subject, data)
    assert decoded == event
    body = json.loads(data)
    assert body["type"] == cls.subject.removeprefix("aisha.")
    assert body["version"] == 1


def test_decode_rejects_unknown_subject_and_bad_bodies():
    with pytest.raises(UnknownSubject):
        contracts.decode("aisha.nope", b"{}")
    with pytest.raises(msgspec.ValidationError):
        contracts.decode(
            contracts.TrainingRequested.subject, b'{"type": "avatar.training_requested"}'
        )
    with pytest.raises(msgspec.DecodeError):
        contracts.decode(contracts.TrainingRequested.subject, b"not json")


def test_events_are_frozen():
    event = _sample(contracts.TrainingCompleted)
    with pytest.raises(AttributeError):
        event.avatar_id = "other"  # type: ignore[misc]


def test_derived_ids_are_stable_and_distinct():
    a = contracts.derived_event_id("training.submitted", "av", 1)
    assert a == contracts.derived_event_id("training.submitted", "av", 1)
    assert a != contracts.derived_event_id("training.submitted", "av", 2)


def test_every_subject_is_captured_by_exactly_one_stream():
    for cls in contracts.EVENT_TYPES:
        owners = [s for s in STREAMS if any(_match(p, cls.subject) for p in s.subjects)]
        assert len(owners) == 1, cls.subject


def test_consumer_filters_are_known_subjects_inside_their_stream():
    streams = {s.name: s for s in STREAMS}
    for consumer in CONSUMERS:
        stream = streams[consumer.stream]
        for subject in consumer.filter_subjects:
            assert subject in contracts.BY_SUBJECT, subject
            assert any(_match(p, subject) for p in stream.subjects)
        assert consumer.max_deliver > 1


def test_dead_letter_subject_lands_in_the_dlq_stream():
    target = contracts.dead_letter_subject("aisha.training.completed")
    assert target == "aisha.dlq.training.completed"
    assert _match("aisha.dlq.>", target)


def test_catalogue_is_up_to_date():
    committed = (ROOT / "docs" / "events.md").read_text()
    assert committed == render(), "run: python -m contracts.catalogue > docs/events.md"


def _match(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(s) > i
        if i >= len(s) or (token != "*" and token != s[i]):
            return False
    return len(p) == len(s)
