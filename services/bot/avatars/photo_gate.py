"""The photo quality gate: per-photo analysis in a worker process, and the checks across an
avatar's photos (near-duplicates by perceptual hash, the same person by face embedding).

dlib holds the GIL for most of a detection (a thread stalled the event loop for ~175 ms),
so the analysis runs in a small process pool; each worker loads the models once. A worker
leaves with its parent: a bot killed with SIGKILL runs no shutdown, and a `spawn` worker holds
both ends of its call queue, so it would otherwise wait for work forever (with the resource
tracker it keeps alive), one orphan per crash.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from services.bot.avatars import likeness_faces
from services.bot.avatars import photo_checks as checks
from services.bot.avatars.likeness import Face
from services.bot.avatars.photo_checks import LIMITS, Limits, PhotoReport, Verdict


@dataclass(frozen=True)
class Known:
    """What is stored of one accepted photo, as the set checks need it."""

    number: int
    phash: int | None
    embedding: Sequence[float] | None
    warnings: Sequence[str] = ()


@dataclass
class SetSummary:
    """Shown before "Start training": soft warnings per photo and the photos of someone else."""

    warnings: dict[int, list[str]] = field(default_factory=dict)
    outliers: list[int] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.warnings and not self.outliers


#: How often a worker checks that the bot that started it is still its parent.
PARENT_CHECK_SECONDS = 1.0


def _warm() -> None:
    checks.models()


def _start_worker(parent: int) -> None:
    threading.Thread(
        target=_exit_with_parent, args=(parent,), name="exit-with-parent", daemon=True
    ).start()
    _warm()


def _exit_with_parent(parent: int) -> None:
    """Re-parented (the bot died without shutting the pool down): leave at once."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(0)


class PhotoGate:
    """One per process; `workers` processes analyse photos in parallel."""

    def __init__(self, workers: int = 1, limits: Limits = LIMITS):
        self.workers = workers
        self.limits = limits
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(os.getpid(),),
            )
        return self._pool

    def warm(self) -> None:
        """Start the workers and load the models now, not on the first user's photo."""
        self._executor().submit(_warm)

    async def analyze(self, data: bytes, *, faces: bool) -> PhotoReport:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), _analyze, data, faces, self.limits)

    async def faces(self, data: bytes) -> list[Face]:
        """The faces of a generated picture, for its likeness score (`likeness_faces`)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), likeness_faces.faces_in, data)

    def against(self, report: PhotoReport, known: Sequence[Known]) -> list[Verdict]:
        """The verdicts of one new photo against the avatar's stored ones."""
        out: list[Verdict] = []
        hashes = [k.phash for k in known if k.phash is not None]
        if near_duplicate(report.phash, hashes, self.limits):
            out.append(Verdict.NEAR_DUPLICATE)
        faces = [k.embedding for k in known if k.embedding is not None]
        if report.embedding is not None and other_person(report.embedding, faces, self.limits):
            out.append(Verdict.OTHER_PERSON)
        return out

    def summary(self, known: Sequence[Known]) -> SetSummary:
        result = SetSummary()
        for k in known:
            if k.warnings:
                result.warnings[k.number] = list(k.warnings)
        with_face = [k for k in known if k.embedding is not None]
        for index in outliers([k.embedding for k in with_face], self.limits):  # type: ignore[misc]
            result.outliers.append(with_face[index].number)
        return result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _analyze(data: bytes, faces: bool, limits: Limits) -> PhotoReport:
    return checks.analyze(data, faces=faces, limits=limits)


def near_duplicate(phash: int, hashes: Sequence[int], limits: Limits = LIMITS) -> bool:
    return any(checks.hamming(phash, h) <= limits.near_duplicate for h in hashes)


#: The identity check needs a majority to compare with: below this many faces, nobody is odd.
MIN_FACES_FOR_IDENTITY = 3


def other_person(
    embedding: Sequence[float], faces: Sequence[Sequence[float]], limits: Limits = LIMITS
) -> bool:
    """Farther than the limit from the median face of the others (robust to a few strangers)."""
    if len(faces) < MIN_FACES_FOR_IDENTITY:
        return False
    center = np.median(np.asarray(faces, dtype=float), axis=0)
    return float(np.linalg.norm(np.asarray(embedding) - center)) > limits.other_person


def outliers(faces: Sequence[Sequence[float]], limits: Limits = LIMITS) -> list[int]:
    """Indexes of the faces farther than the limit from the median face of all of them."""
    if len(faces) < MIN_FACES_FOR_IDENTITY:
        return []
    matrix = np.asarray(faces, dtype=float)
    distances = np.linalg.norm(matrix - np.median(matrix, axis=0), axis=1)
    return [int(i) for i in np.flatnonzero(distances > limits.other_person)]
