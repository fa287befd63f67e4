"""Decompression bombs against the photo validator, measured in a fresh process.

A PNG of 20000×20000 pixels compresses to under 100 KB; decoding it would take gigabytes.
The validator must refuse it from the header, and a large-but-legal picture (64 MP, also a
few hundred KB) must be decoded once and shrunk at once instead of copied around: before
the fix that file alone peaked at ~1.1 GB. Peak RSS is read from the child's rusage, so
memory Pillow allocates in C counts too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.hostile.harness import png_bomb

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import json, resource, sys
from services.bot.app.photo_validation import PhotoRejected, validate_photo
raw = open(sys.argv[1], "rb").read()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    photo = validate_photo(raw)
    outcome = {"accepted": [photo.width, photo.height]}
except PhotoRejected as exc:
    outcome = {"rejected": exc.code}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcome["grew_mb"] = (peak - base) / 1024
print(json.dumps(outcome))
"""


def validate_in_child(data: bytes, tmp_path: Path) -> dict[str, object]:
    path = tmp_path / "upload.png"
    path.write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_20000_by_20000_png_is_refused_without_decoding(tmp_path: Path) -> None:
    bomb = png_bomb(20_000, 20_000)
    assert len(bomb) < 200_000
    outcome = validate_in_child(bomb, tmp_path)
    assert outcome["rejected"] == "too_many_pixels"
    assert float(outcome["grew_mb"]) < 30  # type: ignore[arg-type]


def test_dimensions_just_over_the_cap_are_refused_before_decoding(tmp_path: Path) -> None:
    """81 MP: under Pillow's own bomb limit (89 MP), over ours (64 MP)."""
    outcome = validate_in_child(png_bomb(9_000, 9_000), tmp_path)
    assert outcome["rejected"] == "too_many_pixels"
    assert float(outcome["grew_mb"]) < 30  # type: ignore[arg-type]


def test_a_legal_64_megapixel_png_is_shrunk_with_bounded_memory(tmp_path: Path) -> None:
    """The one decode (8000×8000 RGB, ~256 MB in Pillow) is the whole cost."""
    outcome = validate_in_child(png_bomb(8_000, 8_000, rgb=True), tmp_path)
    assert outcome["accepted"] == [2048, 2048]
    assert float(outcome["grew_mb"]) < 450  # type: ignore[arg-type]
