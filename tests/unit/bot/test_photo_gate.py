"""Each verdict of the photo gate on real photos (tests/data/faces) and the real dlib models:
the per-photo checks, the checks against the other photos, and the worker process."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageFilter

from services.bot.avatars import photo_checks as checks
from services.bot.avatars.photo_checks import Verdict
from services.bot.avatars.photo_gate import Known, PhotoGate, near_duplicate, other_person, outliers
from tests import faces

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("case", sorted(faces.BAD))
def test_each_bad_case_gets_its_hard_verdict(case: str) -> None:
    make, expected = faces.BAD[case]
    report = checks.analyze(make())
    hard = [v for v in report.verdicts if v.hard]
    assert hard, report
    assert hard[0] == Verdict(expected)


def test_a_set_of_one_persons_photos_passes_cleanly() -> None:
    reports = [checks.analyze(faces.person(i)) for i in range(faces.DISTINCT)]
    assert all(r.face_count == 1 for r in reports)
    assert [r.verdicts for r in reports] == [()] * faces.DISTINCT
    assert all(r.embedding is not None and len(r.embedding) == 128 for r in reports)
    hashes = [r.phash for r in reports]
    assert not any(near_duplicate(h, hashes[:i]) for i, h in enumerate(hashes))
    assert outliers([r.embedding for r in reports if r.embedding]) == []


def test_a_recompressed_resized_copy_is_a_near_duplicate() -> None:
    original = checks.analyze(faces.person(0))
    image = Image.open(io.BytesIO(faces.person(0))).resize((600, 749))
    copy = checks.analyze(faces.jpeg(image, quality=60))
    assert checks.hamming(original.phash, copy.phash) <= checks.LIMITS.near_duplicate
    assert near_duplicate(copy.phash, [original.phash])


def test_another_person_is_told_apart_once_three_faces_are_known() -> None:
    known = [checks.analyze(faces.person(i)).embedding for i in range(3)]
    assert all(k is not None for k in known)
    stranger = checks.analyze(faces.jpeg(faces.fit(faces.original("biden.jpg")))).embedding
    same = checks.analyze(faces.person(7)).embedding
    assert stranger is not None
    assert same is not None
    assert other_person(stranger, known)  # type: ignore[arg-type]
    assert not other_person(same, known)  # type: ignore[arg-type]
    assert not other_person(stranger, known[:2])  # type: ignore[arg-type]  # too few to judge
    assert outliers([*known, stranger]) == [3]  # type: ignore[list-item]


def test_style_pictures_need_no_face_but_are_checked_for_blur() -> None:
    cat = checks.analyze(faces.BAD["animal"][0](), faces=False)
    assert (cat.face_count, cat.verdicts) == (0, ())
    blurred = faces.fit(faces.original("chelsea.jpg")).filter(ImageFilter.GaussianBlur(6))
    assert Verdict.BLURRY in checks.analyze(faces.jpeg(blurred), faces=False).verdicts


def test_soft_verdicts_are_warnings_not_refusals() -> None:
    dim = faces.jpeg(Image.eval(faces.fit(faces.original("obama2.jpg")), lambda v: v // 2))
    report = checks.analyze(dim)
    assert report.verdicts == (Verdict.DIM,)
    assert not Verdict.DIM.hard
    assert Verdict.NO_FACE.hard


def test_the_summary_names_warnings_and_strangers_by_photo_number() -> None:
    gate = PhotoGate()
    embeddings = [checks.analyze(faces.person(i)).embedding for i in range(3)]
    stranger = checks.analyze(faces.jpeg(faces.fit(faces.original("biden.jpg")))).embedding
    known = [Known(1, 1, stranger, ("dim",))] + [
        Known(n, n, e) for n, e in enumerate(embeddings, start=2)
    ]
    summary = gate.summary(known)
    assert (summary.warnings, summary.outliers) == ({1: ["dim"]}, [1])


async def test_the_worker_process_analyses_off_the_event_loop() -> None:
    gate = PhotoGate()
    try:
        report = await gate.analyze(faces.person(1), faces=True)
        refused = await gate.analyze(faces.BAD["two_faces"][0](), faces=True)
    finally:
        gate.close()
    assert (report.face_count, report.verdicts) == (1, ())
    assert refused.verdicts[0] is Verdict.SEVERAL_FACES


#: A bot stand-in: starts the gate's worker, says so, then waits to be killed.
_HOLDER = """
import asyncio, sys, time
from services.bot.avatars.photo_gate import PhotoGate
from tests import faces
gate = PhotoGate()
asyncio.run(gate.analyze(faces.person(1), faces=True))
print("ready", flush=True)
time.sleep(120)
"""


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # the process ended while we looked
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_worker_leaves_when_the_bot_is_killed() -> None:
    """SIGKILL runs no shutdown: the worker (and the resource tracker it keeps alive) must
    notice on its own, or every crashed bot leaves a process behind."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        workers = _children(holder.pid)
        assert workers, "the gate started no worker process"
        holder.kill()
        holder.wait(10)
        deadline = time.monotonic() + 15
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [w for w in workers if _alive(w)] == []
    finally:
        holder.kill()
        holder.wait(10)
