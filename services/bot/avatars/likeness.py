"""Likeness: how much a generated picture looks like the avatar's person. Pure numpy.

The reference *identity* of a portrait avatar is made from its accepted training photos'
face embeddings (dlib's 128-D descriptors, stored by the photo gate): the element-wise
median (robust to a stranger or two among the photos) and the median distance of the photos
to it (the spread). A picture is scored by the distance of its best-matching face to that
centre, mapped to 0-100 % by a logistic curve calibrated on the labelled set of
`benchmarks/likeness.py` (`docs/likeness.md` has the numbers and the thresholds).

Outcomes that are not a score: no face (a landscape prompt) → `None` ("not applicable");
a weak identity (fewer than `MIN_FACES` embeddings) → not shown; a face too small to embed
reliably is ignored like no face.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

#: Below this many embeddings the centre is one or two photos: stored, marked weak, not shown.
MIN_FACES = 3
#: The logistic curve: 50 % at this distance to the centre (inside the gap between the
#: labelled set's same-person and other-person distances), and its width; docs/likeness.md.
MIDPOINT = 0.50
WIDTH = 0.05
#: Score bands shown to the user (`likeness.band.<band>` in the locale files).
STRONG = 70.0
WEAK = 40.0
#: A face smaller than this share of the picture's area is not scored (dlib's embedding of
#: a ~40 px face is noise); such a picture counts as "no face".
MIN_FACE_AREA = 0.004


class Band(StrEnum):
    STRONG = "strong"
    FAIR = "fair"
    WEAK = "weak"


@dataclass(frozen=True)
class Identity:
    center: tuple[float, ...]
    spread: float
    faces: int

    @property
    def weak(self) -> bool:
        return self.faces < MIN_FACES


@dataclass(frozen=True)
class Face:
    """One face found in a picture (by the worker, `likeness_faces`)."""

    embedding: tuple[float, ...]
    area: float  # face box / picture area


@dataclass(frozen=True)
class Score:
    percent: float
    distance: float

    @property
    def band(self) -> Band:
        return band(self.percent)

    @property
    def weak(self) -> bool:
        """Below the "low" band's top: the picture is re-drawn once (`likeness_retry`)."""
        return self.percent < WEAK


def identity_of(embeddings: Sequence[Sequence[float]]) -> Identity | None:
    """None when no photo has a face (a style set, or a gate that found none)."""
    if not embeddings:
        return None
    matrix = np.asarray(embeddings, dtype=float)
    center = np.median(matrix, axis=0)
    spread = float(np.median(np.linalg.norm(matrix - center, axis=1)))
    return Identity(tuple(float(x) for x in center), spread, len(embeddings))


def percent(distance: float) -> float:
    """The calibrated score: 50 % at `MIDPOINT`, ~96 % at the typical same-person distance."""
    value = 100.0 / (1.0 + math.exp((distance - MIDPOINT) / WIDTH))
    return round(min(100.0, max(0.0, value)), 1)


def band(value: float) -> Band:
    if value >= STRONG:
        return Band.STRONG
    return Band.FAIR if value >= WEAK else Band.WEAK


def distance(embedding: Sequence[float], identity: Identity) -> float:
    return float(np.linalg.norm(np.asarray(embedding, float) - np.asarray(identity.center, float)))


def best(faces: Sequence[Face], identity: Identity) -> Score | None:
    """Several faces: the best match (the person may stand among others); none big enough:
    not applicable."""
    usable = [f for f in faces if f.area >= MIN_FACE_AREA]
    if not usable:
        return None
    nearest = min(distance(f.embedding, identity) for f in usable)
    return Score(percent(nearest), round(nearest, 4))
