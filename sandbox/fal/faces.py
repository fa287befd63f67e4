"""The person in the pictures: a trained LoRA carries a photo of its training set, and a
generation with that LoRA shows that photo pasted in its drawing, so the bot's likeness
score sees the avatar's real face (or, with the `other_face` fault, someone else's).

No face detection here (the emulator stays free of dlib): the training photos the bot
sends are portraits with the face in the upper middle (its photo gate refused the rest),
so the whole first photo, scaled to about half of the picture's height, carries a face
large enough for the bot's detector.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from PIL import Image

#: Between the LoRA's filler bytes and the photo it carries.
MARK = b"\x00AISHA-SANDBOX-FACE\x00"
#: The stranger of the `other_face` fault unless its `file` param names another picture.
STRANGER = Path(__file__).resolve().parents[2] / "tests" / "data" / "faces" / "biden.jpg"
#: The pasted photo's height as a share of the picture's.
SCALE = 0.6


def _jpeg(image: Image.Image, side: int = 512) -> bytes:
    image = image.convert("RGB")
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def first_photo(archive: bytes) -> bytes | None:
    """The first decodable picture of a training archive, as a ≤ 512 px JPEG."""
    with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
        for info in sorted(bundle.infolist(), key=lambda i: i.filename):
            if info.is_dir() or info.file_size > 50 * 1024 * 1024:
                continue
            try:
                with Image.open(io.BytesIO(bundle.read(info))) as image:
                    return _jpeg(image)
            except (OSError, ValueError):  # not an image: try the next entry
                continue
    return None


def carried(lora: bytes) -> bytes | None:
    """The photo a sandbox LoRA carries (None for an old or foreign file)."""
    _, mark, photo = lora.partition(MARK)
    return photo if mark and photo else None


def stranger(path: str | None = None) -> bytes | None:
    file = Path(path) if path else STRANGER
    if not file.is_file():
        return None
    with Image.open(file) as image:
        return _jpeg(image)


def paste(picture: Image.Image, photo: bytes) -> Image.Image:
    """The photo in the middle of the drawing, about `SCALE` of its height."""
    with Image.open(io.BytesIO(photo)) as opened:
        source = opened.convert("RGB")
    height = max(1, round(picture.height * SCALE))
    width = max(1, min(picture.width, round(source.width * height / source.height)))
    face = source.resize((width, height))
    out = picture.copy()
    out.paste(face, ((picture.width - width) // 2, (picture.height - height) // 2))
    return out
