"""Faces of a generated picture, for the likeness score: run in the photo gate's worker
process (`PhotoGate.faces`), so dlib never holds the bot's event loop.

Unlike a training photo, a generated picture may show several people or none; every face
found is embedded (at most `MAX_FACES`, the largest first) and `likeness.best` picks the
nearest. Profile views are mostly not found by the frontal HOG detector: such a picture is
"not applicable" rather than a poor likeness.
"""

from __future__ import annotations

from services.bot.avatars import photo_checks as checks
from services.bot.avatars.likeness import Face

#: More faces than this (a crowd) are not all embedded: each costs ~60-80 ms of CPU.
MAX_FACES = 4


def faces_in(data: bytes) -> list[Face]:
    rgb = checks.load(data)
    found = checks.detect(rgb)
    whole = rgb.shape[0] * rgb.shape[1]
    largest = sorted(found, key=lambda f: -checks.box_area(f[0]))[:MAX_FACES]
    return [Face(checks.embed(rgb, box), checks.box_area(box) / whole) for box, _ in largest]
