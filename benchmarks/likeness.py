"""The likeness score measured: same person vs different people, and the cost per picture,
on a labelled set built only from pictures that ship in package archives
(`tests/data/faces`, see its README) plus transformations.

    python -m benchmarks.likeness [--json out.json]

Protocol (the bot's own path): a reference identity is made from training-like variants
(`tests.faces.VARIANTS`) of some originals of a person (`likeness.identity_of`); probes are
the transformed pictures (`benchmarks.photo_gate.TRANSFORMS`: mirror, rotations, light, JPEG
q25, half size, crop) scored by `likeness_faces.faces_in` + `likeness.best`.
* genuine, other photo: Obama's identity from two of his three originals, probes of the
  third (leave one original out, 3 folds) — the hard, honest case;
* genuine, same photo: a one-photo person's identity from variants of that photo, probes
  transformed from it (easy: reported separately, not used for the thresholds);
* impostor: every identity against every other person's probes.
The numbers and the thresholds chosen from them are in docs/likeness.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from benchmarks.photo_gate import TRANSFORMS
from services.bot.avatars import likeness, likeness_faces
from services.bot.avatars import photo_checks as checks
from tests import faces

PEOPLE = {
    "obama": list(faces.PERSON),
    "biden": ["biden.jpg"],
    "collins": ["astronaut.jpg"],
    "hopper": ["grace_hopper.jpg"],
}


def _identity(originals: list[str]) -> likeness.Identity:
    found: list[tuple[float, ...]] = []
    for name in originals:
        for v in faces.VARIANTS:
            pics = likeness_faces.faces_in(
                faces.jpeg(faces.fit(faces.variant(faces.original(name), *v)))
            )
            found += [f.embedding for f in pics[:1]]
    identity = likeness.identity_of(found)
    assert identity is not None
    return identity


def _in_scene(im: Image.Image) -> Image.Image:
    """The person small in a larger picture (a full-figure generation): ~1/3 of the side."""
    canvas = Image.new("RGB", (1024, 1024), (110, 140, 170))
    small = im.resize((im.width // 3, im.height // 3))
    canvas.paste(small, (400, 200))
    return canvas


#: Harder than the photo gate's: what generated pictures do to a face.
MORE = {
    "blur r=2": lambda im: im.filter(ImageFilter.GaussianBlur(2)),
    "low-res x1/4": lambda im: im.resize((im.width // 4, im.height // 4)).resize(im.size),
    "small in scene": _in_scene,
}


def _probes(name: str) -> list[tuple[str, bytes]]:
    base: Image.Image = faces.fit(faces.original(name))
    out = [(f"{name}/{t}", faces.jpeg(fn(base))) for t, fn in {**TRANSFORMS, **MORE}.items()]
    partner = "biden.jpg" if name != "biden.jpg" else "astronaut.jpg"
    out.append((f"{name}/beside {partner}", faces.jpeg(faces.collage(name, partner))))
    return out


def scores() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    probes = {n: _probes(n) for names in PEOPLE.values() for n in names}
    found = {key: likeness_faces.faces_in(data) for p in probes.values() for key, data in p}
    references: list[tuple[str, str, likeness.Identity, set[str]]] = []
    for held in faces.PERSON:  # leave one original out
        rest = [n for n in faces.PERSON if n != held]
        references.append(("obama", "other photo", _identity(rest), {held}))
    for who in ("biden", "collins", "hopper"):
        references.append((who, "same photo", _identity(PEOPLE[who]), set(PEOPLE[who])))
    for who, kind, identity, genuine in references:
        for person, names in PEOPLE.items():
            for name in names:
                if person == who and name not in genuine:
                    continue  # an original that built the reference
                label = kind if person == who else "impostor"
                for key, _ in probes[name]:
                    if person != who and any(key.endswith(f"beside {n}") for n in PEOPLE[who]):
                        continue  # a group picture with the reference's person in it
                    score = likeness.best(found[key], identity)
                    rows.append(
                        dict(
                            reference=who,
                            probe=key,
                            label=label,
                            distance=None if score is None else score.distance,
                            percent=None if score is None else score.percent,
                        )
                    )
    return rows


def roc(genuine: list[float], impostor: list[float]) -> dict[str, Any]:
    """EER, AUC, the gap between the classes, and the rates at a few distance thresholds
    (a lower distance = the same person)."""
    g, i = np.array(genuine), np.array(impostor)
    cuts = sorted(set(genuine + impostor))
    eer, cut = min((max(np.mean(g > t), np.mean(i <= t)), t) for t in cuts)
    at = {}
    for t in (0.40, 0.45, 0.50, 0.55, 0.60):
        at[f"{t:.2f}"] = dict(tpr=float(np.mean(g <= t)), fpr=float(np.mean(i <= t)))
    pairs = [(a < b) + 0.5 * (a == b) for a in genuine for b in impostor]
    return dict(
        eer=float(eer),
        eer_cut=round(float(cut), 3),
        auc=float(np.mean(pairs)),
        gap=round(float(i.min() - g.max()), 3),
        at=at,
    )


def cost(repeat: int = 3) -> dict[str, Any]:
    """Per picture (1024 px, one face): the scorer's call vs the raw dlib calls on a decoded
    array (detector + landmarks + descriptor) as the baseline."""
    import dlib

    m = checks.models()
    picture = faces.jpeg(faces.fit(faces.original("obama.jpg"), 1024))
    rgb = checks.load(picture)
    ours, raw = [], []
    for _ in range(repeat * 5):
        start = time.process_time()
        likeness_faces.faces_in(picture)
        ours.append((time.process_time() - start) * 1000)
        start = time.process_time()
        rect = m.detector(rgb, 0)[0]
        shape = m.landmarks(
            rgb, dlib.rectangle(rect.left(), rect.top(), rect.right(), rect.bottom())
        )
        m.encoder.compute_face_descriptor(rgb, shape, 0)
        raw.append((time.process_time() - start) * 1000)
    med_ours, med_raw = statistics.median(ours), statistics.median(raw)
    return dict(
        scorer_cpu_ms_median=round(med_ours, 1),
        scorer_cpu_ms_max=round(max(ours), 1),
        raw_dlib_cpu_ms_median=round(med_raw, 1),
        ratio=round(med_ours / med_raw, 2),
    )


def through_worker(pictures: int = 4, rounds: int = 3) -> dict[str, Any]:
    """Wall time of one delivery's scoring through the bot's worker process (`PhotoGate`,
    one worker, models warm): what a delivery of `pictures` pictures waits."""
    import asyncio

    from services.bot.avatars.photo_gate import PhotoGate

    picture = faces.jpeg(faces.fit(faces.original("obama2.jpg"), 1024))

    async def run() -> list[float]:
        gate = PhotoGate()
        await gate.faces(picture)  # start the worker, load the models
        walls = []
        for _ in range(rounds):
            start = time.perf_counter()
            await asyncio.gather(*(gate.faces(picture) for _ in range(pictures)))
            walls.append((time.perf_counter() - start) * 1000)
        gate.close()
        return walls

    walls = asyncio.run(run())
    return dict(
        pictures=pictures,
        wall_ms_median=round(statistics.median(walls)),
        wall_ms_max=round(max(walls)),
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = scores()
    by: dict[str, list[float]] = {}
    none = 0
    for r in rows:
        if r["distance"] is None:
            none += 1
            continue
        by.setdefault(r["label"], []).append(r["distance"])
    summary: dict[str, Any] = {"probes": len(rows), "no_face": none}
    for label, values in by.items():
        summary[label] = dict(
            n=len(values),
            min=round(min(values), 3),
            median=round(statistics.median(values), 3),
            max=round(max(values), 3),
        )
    summary["roc_other_photo"] = roc(by["other photo"], by["impostor"])
    summary["roc_all_genuine"] = roc(by["other photo"] + by["same photo"], by["impostor"])
    pct = {label: [likeness.percent(d) for d in values] for label, values in by.items()}
    summary["percent"] = {
        label: dict(min=min(v), median=statistics.median(v), max=max(v)) for label, v in pct.items()
    }
    summary["bands"] = {
        label: {b.value: sum(likeness.band(p) == b for p in v) for b in likeness.Band}
        for label, v in pct.items()
    }
    summary["cost"] = cost()
    summary["delivery"] = through_worker()
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(dict(summary=summary, rows=rows), out, indent=1)


if __name__ == "__main__":
    main()
