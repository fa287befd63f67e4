"""What one training photo shows: faces, their size, sharpness, exposure, a perceptual hash
and a face embedding. Pure functions (numpy + dlib), run in a worker process by `photo_gate`.

The detector is dlib's HOG frontal face detector (built into the `dlib-bin` wheel); the
5-point landmarks and the 128-D ResNet embedding come from `face-recognition-models`, which
ships the model files in its wheel, so nothing is downloaded at run time. The choice and
the thresholds below are measured in `benchmarks/photo_gate.py` (`docs/decisions.md`).
"""

from __future__ import annotations

import importlib.util
import io
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

#: Photos are analysed at this longest side: HOG finds faces of >= 80 px at no upsampling,
#: i.e. faces of >= 10 % of the side; a second pass upsampled once finds smaller ones.
WORK_SIDE = 800
#: Face crops are measured at a fixed size, so sharpness does not depend on the resolution.
CROP_SIDE = 128
#: A picture without a face (style avatars, or no face found) is measured at this side.
WHOLE_SIDE = 512


class Verdict(StrEnum):
    """A reason code; its text is `photos.gate.<code>` in the locale files."""

    NO_FACE = "no_face"
    SEVERAL_FACES = "several_faces"
    TINY_FACE = "tiny_face"
    BLURRY = "blurry"
    TOO_DARK = "too_dark"
    OVEREXPOSED = "overexposed"
    NEAR_DUPLICATE = "near_duplicate"
    OTHER_PERSON = "other_person"
    SMALL_FACE = "small_face"
    SOFT = "soft"
    DIM = "dim"
    BRIGHT = "bright"

    @property
    def hard(self) -> bool:
        """Hard verdicts refuse the photo; soft ones are warnings the user may ignore."""
        return self not in _SOFT


_SOFT = frozenset({Verdict.SMALL_FACE, Verdict.SOFT, Verdict.DIM, Verdict.BRIGHT})


@dataclass(frozen=True)
class Limits:
    """Thresholds, picked from the labelled set's measurements (`docs/performance.md`)."""

    min_face_score: float = 0.3  # HOG score of a face; weaker detections are ignored
    second_face_ratio: float = 0.25  # another face at least this fraction of the main one's area
    tiny_face: float = 0.008  # face box / image area below which the face is too small
    small_face: float = 0.02  # below this: a warning
    blurry: float = 0.012  # normalized Laplacian energy of the face crop
    soft: float = 0.025
    too_dark: float = 45.0  # mean luminance 0-255 of the face (or of the picture)
    dim: float = 75.0
    overexposed: float = 0.45  # share of clipped (>= 250) pixels
    bright: float = 0.2
    near_duplicate: int = 8  # perceptual hash bits that may differ
    other_person: float = 0.6  # embedding distance to the set's median face


LIMITS = Limits()


@dataclass(frozen=True)
class PhotoReport:
    face_count: int
    face_area_ratio: float | None
    sharpness: float
    brightness: float
    clipped: float
    phash: int
    embedding: tuple[float, ...] | None
    verdicts: tuple[Verdict, ...]


class _Models:
    """Loaded once per process; dlib's network keeps per-call state, so calls are locked."""

    def __init__(self) -> None:
        import dlib  # a compiled module, imported only where faces are analysed

        spec = importlib.util.find_spec("face_recognition_models")
        assert spec is not None
        assert spec.submodule_search_locations
        models = Path(next(iter(spec.submodule_search_locations))) / "models"
        self.detector: Any = dlib.get_frontal_face_detector()
        self.landmarks: Any = dlib.shape_predictor(
            str(models / "shape_predictor_5_face_landmarks.dat")
        )
        self.encoder: Any = dlib.face_recognition_model_v1(
            str(models / "dlib_face_recognition_resnet_model_v1.dat")
        )
        self.lock = threading.Lock()


_models: _Models | None = None
_models_lock = threading.Lock()


def models() -> _Models:
    global _models
    with _models_lock:
        if _models is None:
            _models = _Models()
        return _models


def load(data: bytes, side: int = WORK_SIDE) -> np.ndarray:
    """Decode at a reduced scale (JPEG `draft`) and shrink to `side`: an RGB uint8 array."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (side, side))
        image.load()
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    rgb.thumbnail((side, side))
    return np.asarray(rgb)


def analyze(data: bytes, *, faces: bool = True, limits: Limits = LIMITS) -> PhotoReport:
    """One photo's measurements and its per-photo verdicts (duplicates and identity are
    decided against the other photos by `photo_set`)."""
    rgb = load(data)
    gray = rgb.mean(axis=2)
    found = detect(rgb, limits) if faces else []
    box = found[0][0] if found else None
    region = gray if box is None else _crop(gray, box)
    report = dict(
        sharpness=sharpness(region),
        brightness=float(region.mean()),
        clipped=float((region >= 250).mean()),
        phash=phash(gray),
    )
    verdicts: list[Verdict] = []
    area = None
    embedding = None
    if faces and box is None:
        verdicts.append(Verdict.NO_FACE)
    elif box is not None:
        main = box_area(box)
        area = main / (rgb.shape[0] * rgb.shape[1])
        if any(box_area(b) >= limits.second_face_ratio * main for b, _ in found[1:]):
            verdicts.append(Verdict.SEVERAL_FACES)
        if area < limits.tiny_face:
            verdicts.append(Verdict.TINY_FACE)
        elif area < limits.small_face:
            verdicts.append(Verdict.SMALL_FACE)
        embedding = embed(rgb, box)
    verdicts += exposure_verdicts(
        report["sharpness"], report["brightness"], report["clipped"], limits
    )
    return PhotoReport(
        face_count=len(found),
        face_area_ratio=area,
        embedding=embedding,
        verdicts=tuple(verdicts),
        **report,  # type: ignore[arg-type]
    )


Box = tuple[int, int, int, int]


def detect(rgb: np.ndarray, limits: Limits = LIMITS) -> list[tuple[Box, float]]:
    """Faces as (left, top, right, bottom) with their scores, strongest first; a second,
    upsampled pass only when the first found nothing (small faces cost 4x more)."""
    m = models()
    for upsample in (0, 1):
        with m.lock:
            rects, scores, _ = m.detector.run(rgb, upsample, limits.min_face_score)
        found = [
            ((r.left(), r.top(), r.right(), r.bottom()), float(s))
            for r, s in zip(rects, scores, strict=True)
        ]
        if found:
            return sorted(found, key=lambda f: -f[1])
    return []


def embed(rgb: np.ndarray, box: Box) -> tuple[float, ...]:
    """The 128-D face descriptor (Euclidean distance < ~0.6: the same person)."""
    import dlib

    m = models()
    with m.lock:
        shape = m.landmarks(rgb, dlib.rectangle(*box))
        vector = m.encoder.compute_face_descriptor(rgb, shape, 0)
    return tuple(float(x) for x in vector)


def box_area(box: Box) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def _crop(gray: np.ndarray, box: Box) -> np.ndarray:
    h, w = gray.shape
    left, top, right, bottom = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
    face = Image.fromarray(gray[top:bottom, left:right].astype(np.uint8))
    return np.asarray(face.resize((CROP_SIDE, CROP_SIDE), Image.Resampling.BILINEAR), float)


def sharpness(gray: np.ndarray) -> float:
    """Laplacian energy over the region's own contrast: blur removes the high frequencies
    whatever the lighting, so the ratio does not punish a dim but sharp photo."""
    if gray.shape != (CROP_SIDE, CROP_SIDE) and max(gray.shape) > WHOLE_SIDE:
        scale = WHOLE_SIDE / max(gray.shape)
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        gray = np.asarray(Image.fromarray(gray.astype(np.uint8)).resize(size), float)
    lap = (
        -4 * gray[1:-1, 1:-1] + gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:]
    )
    contrast = float(gray.var())
    return float(lap.var()) / contrast if contrast > 1.0 else 0.0


def exposure_verdicts(
    sharp: float, brightness: float, clipped: float, limits: Limits = LIMITS
) -> list[Verdict]:
    out: list[Verdict] = []
    if sharp < limits.blurry:
        out.append(Verdict.BLURRY)
    elif sharp < limits.soft:
        out.append(Verdict.SOFT)
    if brightness < limits.too_dark:
        out.append(Verdict.TOO_DARK)
    elif brightness < limits.dim:
        out.append(Verdict.DIM)
    if clipped > limits.overexposed:
        out.append(Verdict.OVEREXPOSED)
    elif clipped > limits.bright:
        out.append(Verdict.BRIGHT)
    return out


_DCT = np.cos(np.pi / 64 * np.outer(np.arange(32), 2 * np.arange(32) + 1))


def phash(gray: np.ndarray) -> int:
    """64-bit DCT perceptual hash (as in imagehash.phash), signed to fit a bigint column."""
    small = np.asarray(
        Image.fromarray(gray.astype(np.uint8)).resize((32, 32), Image.Resampling.LANCZOS), float
    )
    low = (_DCT @ small @ _DCT.T)[:8, :8].flatten()
    bits = low > np.median(low[1:])
    value = int("".join("1" if b else "0" for b in bits), 2)
    return value - (1 << 64) if value >= 1 << 63 else value


def hamming(a: int, b: int) -> int:
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()
