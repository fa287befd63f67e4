"""The likeness score: the reference identity, the calibrated percentage and its bands, the
picture outcomes (several faces, tiny face, no face) on real photos with the real dlib
models, and the scorer's bound (a slow worker never holds a delivery past its timeout)."""

from __future__ import annotations

import asyncio
import functools
import math
from uuid import uuid4

import numpy as np
import pytest
from PIL import Image

from services.bot.app.metrics import BotMetrics
from services.bot.avatars import likeness, likeness_rows
from services.bot.avatars.likeness import Band, Face, Identity, best, identity_of, percent
from services.bot.avatars.likeness_faces import faces_in
from services.bot.avatars.likeness_scorer import LikenessScorer
from tests import faces


def _unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128)
    return np.asarray(v / np.linalg.norm(v) * 0.2)


def _vec(v: np.ndarray) -> tuple[float, ...]:
    return tuple(float(x) for x in v)


def test_the_identity_is_the_median_face_and_ignores_a_stranger() -> None:
    person = [_vec(_unit(0) + _unit(i) * 0.3) for i in range(1, 9)]
    stranger = _vec(_unit(99) * 5)
    with_stranger = identity_of([*person, stranger])
    alone = identity_of(person)
    assert with_stranger is not None
    assert alone is not None
    shift = np.linalg.norm(np.subtract(with_stranger.center, alone.center))
    assert shift < 0.05 < np.linalg.norm(np.subtract(stranger, alone.center))
    assert with_stranger.faces == 9
    assert not with_stranger.weak
    assert 0 < alone.spread < 0.2


def test_one_or_two_photos_make_a_weak_identity_and_none_make_none() -> None:
    one = identity_of([_vec(_unit(1))])
    assert one is not None
    assert one.weak
    assert one.spread == 0.0
    two = identity_of([_vec(_unit(1)), _vec(_unit(2))])
    assert two is not None
    assert two.weak
    assert identity_of([]) is None


def test_the_percentage_falls_with_the_distance_through_the_documented_bands() -> None:
    assert percent(likeness.MIDPOINT) == 50.0
    values = [percent(d) for d in np.arange(0.0, 1.2, 0.05)]
    assert values == sorted(values, reverse=True)
    assert percent(0.33) > 95
    assert percent(0.63) < 10
    assert likeness.band(percent(0.33)) is Band.STRONG
    assert likeness.band(percent(0.5)) is Band.FAIR
    assert likeness.band(percent(0.63)) is Band.WEAK
    assert not math.isnan(percent(10.0))


def test_several_faces_score_the_best_match_and_tiny_or_no_faces_are_not_applicable() -> None:
    me = Identity(tuple(_unit(0)), 0.1, 10)
    near = Face(tuple(_unit(0) + 0.01), 0.05)
    far = Face(tuple(_unit(5) * 4), 0.2)
    both = best([far, near], me)
    assert both is not None
    assert both.percent > 95
    assert best([], me) is None
    tiny = Face(near.embedding, likeness.MIN_FACE_AREA / 2)
    assert best([tiny], me) is None
    assert best([tiny, far], me).band is Band.WEAK  # type: ignore[union-attr]


@functools.cache
def _obama_without_his_first_photo() -> Identity:
    found = [faces_in(faces.person(i))[0].embedding for i in range(faces.DISTINCT) if i % 3]
    identity = identity_of(found)
    assert identity is not None
    return identity


def _probe(name: str) -> bytes:
    return faces.jpeg(faces.fit(faces.original(name)))


def test_real_photos_the_same_person_scores_high_others_low_landscapes_not_at_all() -> None:
    me = _obama_without_his_first_photo()
    own = best(faces_in(_probe("obama.jpg")), me)  # a photo the identity was not made of
    assert own is not None
    assert own.band is Band.STRONG, own
    for other in ("biden.jpg", "astronaut.jpg", "grace_hopper.jpg"):
        score = best(faces_in(_probe(other)), me)
        assert score is not None, other
        assert score.band is Band.WEAK, (other, score)
    assert faces_in(_probe("coffee.jpg")) == []
    assert best(faces_in(_probe("chelsea.jpg")), me) is None


def test_real_photos_a_group_picture_scores_its_best_match() -> None:
    group = faces_in(faces.jpeg(faces.collage("biden.jpg", "obama.jpg")))
    assert len(group) == 2
    score = best(group, _obama_without_his_first_photo())
    assert score is not None
    assert score.band is Band.STRONG


def test_real_photos_a_profile_view_is_not_applicable() -> None:
    """The frontal detector finds no face in the cameraman's profile: no score, no failure."""
    with Image.open(faces.DATA / "camera.jpg") as im:
        assert faces_in(faces.jpeg(faces.fit(im.convert("RGB")))) == []


class _Gate:
    def __init__(self, delay: float, found: list[Face]):
        self.delay, self.found, self.calls = delay, found, 0

    async def faces(self, data: bytes) -> list[Face]:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.found


def _scorer(
    monkeypatch: pytest.MonkeyPatch, identity: Identity | None, gate: _Gate, timeout: float
) -> tuple[LikenessScorer, BotMetrics]:
    async def stored(pool: object, avatar_id: object) -> Identity | None:
        return identity

    monkeypatch.setattr(likeness_rows, "identity", stored)
    metrics = BotMetrics()
    scorer = LikenessScorer(None, gate, timeout=timeout, metrics=metrics)  # type: ignore[arg-type]
    return scorer, metrics


async def test_the_scorer_gives_up_at_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    me = Identity(tuple(_unit(0)), 0.1, 10)
    scorer, metrics = _scorer(monkeypatch, me, _Gate(5.0, []), timeout=0.2)
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await scorer.score(uuid4(), [b"a", b"b"]) == [None, None]
    assert loop.time() - start < 1.0
    assert metrics.likeness_scored.labels("timeout")._value.get() == 2


async def test_the_scorer_scores_each_picture_and_skips_weak_identities(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    me = Identity(tuple(_unit(0)), 0.1, 10)
    gate = _Gate(0.0, [Face(me.center, 0.1)])
    scorer, metrics = _scorer(monkeypatch, me, gate, timeout=1.0)
    scores = await scorer.score(uuid4(), [b"a", b"b"])
    assert [s.percent if s else None for s in scores] == [100.0, 100.0]
    assert metrics.likeness_scored.labels("scored")._value.get() == 2
    assert await scorer.score(None, [b"a"]) == [None]

    weak, gate = Identity(me.center, 0.0, 1), _Gate(0.0, [])
    scorer, metrics = _scorer(monkeypatch, weak, gate, timeout=1.0)
    assert await scorer.score(uuid4(), [b"a"]) == [None]
    assert gate.calls == 0
    assert metrics.likeness_scored.labels("weak_identity")._value.get() == 1
