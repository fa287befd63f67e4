"""The photo gate measured: detector accuracy, same-person accuracy, the blur and exposure
margins, and the cost per photo, on a labelled set built only from pictures that ship in
package archives (`tests/data/faces`, see its README) plus transformations and non-faces.

    python -m benchmarks.photo_gate [--json out.json]

The numbers are in docs/performance.md ("Photo gate"); the thresholds in
`services/bot/avatars/photo_checks.py` were picked from them.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from services.bot.avatars import photo_checks as checks
from tests import faces

Transform = Callable[[Image.Image], Image.Image]
TRANSFORMS: dict[str, Transform] = {
    "as is": lambda im: im,
    "mirror": ImageOps.mirror,
    "rotate +6": lambda im: im.rotate(6, resample=Image.Resampling.BICUBIC),
    "rotate -10": lambda im: im.rotate(-10, resample=Image.Resampling.BICUBIC),
    "darker x0.7": lambda im: ImageEnhance.Brightness(im).enhance(0.7),
    "brighter x1.3": lambda im: ImageEnhance.Brightness(im).enhance(1.3),
    "jpeg q25": lambda im: Image.open(io.BytesIO(faces.jpeg(im, quality=25))),
    "half size": lambda im: faces.fit(im.resize((im.width // 2, im.height // 2))),
    "crop 80%": lambda im: faces.variant(im, False, 0.8, 0, 1.0),
}
ONE = {  # identity → originals
    "obama": list(faces.PERSON),
    "biden": ["biden.jpg"],
    "collins": ["astronaut.jpg"],
    "hopper": ["grace_hopper.jpg"],
}
GROUPS = [
    ("obama.jpg", "biden.jpg"),
    ("astronaut.jpg", "grace_hopper.jpg"),
    ("obama2.jpg", "grace_hopper.jpg"),
    ("biden.jpg", "astronaut.jpg"),
    ("obama.jpg", "astronaut.jpg", "grace_hopper.jpg"),
]


def _no_faces() -> dict[str, Image.Image]:
    """Non-faces: photos without people, a screenshot, a drawing, and the lower parts
    (bodies, suits, backgrounds) of the people's photos."""
    out = {n: faces.fit(faces.original(n)) for n in faces.NO_FACE}
    out["screenshot"] = faces.screenshot()
    out["cartoon"] = faces.cartoon()
    for name in ("obama3.jpg", "biden.jpg", "obama2.jpg"):
        im = faces.original(name)
        out[f"{name} lower half"] = faces.fit(im.crop((0, im.height // 2, im.width, im.height)))
    for name in faces.NO_FACE:
        im = faces.original(name)
        out[f"{name} left part"] = faces.fit(im.crop((0, 0, im.width * 2 // 3, im.height)))
    return out


def labelled() -> list[tuple[str, str, str | None, bytes]]:
    """(name, class none|one|several, identity, JPEG) for every picture of the set."""
    rows: list[tuple[str, str, str | None, bytes]] = []
    for who, names in ONE.items():
        for name, (t, fn) in itertools.product(names, TRANSFORMS.items()):
            picture = faces.jpeg(fn(faces.fit(faces.original(name))))
            rows.append((f"{name} {t}", "one", who, picture))
    rows += [(f"person({i})", "one", "obama", faces.person(i)) for i in range(faces.DISTINCT)]
    for group, t in itertools.product(GROUPS, ("as is", "mirror", "jpeg q25")):
        collage = faces.collage(*group)
        rows.append((f"{'+'.join(group)} {t}", "several", None, faces.jpeg(TRANSFORMS[t](collage))))
    for (name, im), t in itertools.product(_no_faces().items(), ("as is", "mirror", "jpeg q25")):
        rows.append((f"{name} {t}", "none", None, faces.jpeg(TRANSFORMS[t](im))))
    return rows


def face_class(report: checks.PhotoReport) -> str:
    """The gate's reading: no face, one face (maybe with small ones behind), several."""
    if report.face_count == 0:
        return "none"
    return "several" if checks.Verdict.SEVERAL_FACES in report.verdicts else "one"


def detector(rows: list[tuple[str, str, str | None, bytes]]) -> dict[str, Any]:
    confusion: Counter[tuple[str, str]] = Counter()
    misses: list[str] = []
    embeddings: list[tuple[str, np.ndarray]] = []
    costs: list[float] = []
    cpu: list[float] = []
    for name, truth, who, data in rows:
        start, start_cpu = time.perf_counter(), time.process_time()
        report = checks.analyze(data)
        costs.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
        got = face_class(report)
        confusion[(truth, got)] += 1
        if got != truth:
            misses.append(f"{name}: {truth} → {got}")
        if truth == "one" and got == "one" and who and report.embedding:
            embeddings.append((who, np.asarray(report.embedding)))
    total = sum(confusion.values())
    faces_true = sum(n for (t, _), n in confusion.items() if t != "none")
    face_found = sum(n for (t, g), n in confusion.items() if t != "none" and g != "none")
    false_face = sum(n for (t, g), n in confusion.items() if t == "none" and g != "none")
    multi = [(t, g) for t, g in confusion.elements() if t != "none" and g != "none"]
    return {
        "pictures": total,
        "by class": dict(Counter(t for _, t, _, _ in rows)),
        "accuracy (none/one/several)": sum(n for (t, g), n in confusion.items() if t == g) / total,
        "face recall": face_found / faces_true,
        "non-faces taken for a face": false_face,
        "one vs several accuracy": sum(t == g for t, g in multi) / len(multi),
        "misses": misses,
        "ms per photo (wall)": _spread(costs),
        "ms per photo (CPU)": _spread(cpu),
        "_embeddings": embeddings,
    }


def identity(embeddings: list[tuple[str, np.ndarray]], limit: float) -> dict[str, Any]:
    same, diff = [], []
    for (a, ea), (b, eb) in itertools.combinations(embeddings, 2):
        (same if a == b else diff).append(float(np.linalg.norm(ea - eb)))
    right = sum(d <= limit for d in same) + sum(d > limit for d in diff)
    obama = np.asarray([e for who, e in embeddings if who == "obama"])
    center = np.median(obama, axis=0)
    strangers = [e for who, e in embeddings if who != "obama"]
    return {
        "pairs same / different": [len(same), len(diff)],
        "pair accuracy at limit": right / (len(same) + len(diff)),
        "same: max distance": max(same),
        "different: min distance": min(diff),
        "to the median face: max of the person": float(
            np.max(np.linalg.norm(obama - center, axis=1))
        ),
        "to the median face: min of a stranger": float(
            np.min(np.linalg.norm(np.asarray(strangers) - center, axis=1))
        ),
    }


def margins() -> dict[str, Any]:
    """Sharpness and luminance of clean photos against blurred / darkened copies."""
    base = [faces.fit(faces.original(n)) for n in (*faces.PERSON, *faces.OTHERS)]
    out: dict[str, Any] = {}
    for radius in (0, 1, 2, 3, 4, 6):
        values = [
            checks.analyze(faces.jpeg(im.filter(ImageFilter.GaussianBlur(radius)))).sharpness
            for im in base
        ]
        out[f"sharpness, blur r={radius}"] = [round(min(values), 4), round(max(values), 4)]
    for factor in (1.0, 0.5, 0.3, 0.15):
        values = [
            checks.analyze(faces.jpeg(ImageEnhance.Brightness(im).enhance(factor))).brightness
            for im in base
        ]
        out[f"face luminance x{factor}"] = [round(min(values)), round(max(values))]
    return out


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 1),
        "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 1),
        "max": round(ordered[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    start = time.perf_counter()
    checks.models()
    load_ms = (time.perf_counter() - start) * 1000
    rows = labelled()
    found = detector(rows)
    result = {
        "models load ms": round(load_ms),
        "detector": {k: v for k, v in found.items() if not k.startswith("_")},
        "same person": identity(found["_embeddings"], checks.LIMITS.other_person),
        "margins": margins(),
        "limits": checks.LIMITS.__dict__,
    }
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
