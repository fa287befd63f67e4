"""Real face photos for tests and the photo-gate benchmark, from `tests/data/faces/`
(public-domain pictures taken from package archives, see its README) plus transformations.

`person(i)` is the i-th distinct photo of one person (three originals, each cropped,
flipped, rotated and relit a few ways), so a set of 10-20 passes the photo gate; `BAD`
makes one picture per bad case the gate must refuse.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

DATA = Path(__file__).parent / "data" / "faces"
PERSON = ("obama.jpg", "obama2.jpg", "obama3.jpg")
#: Other people, one photo each (and the same person in none of them).
OTHERS = ("biden.jpg", "astronaut.jpg", "grace_hopper.jpg")
NO_FACE = ("coffee.jpg", "chelsea.jpg")
#: (mirror, zoom, degrees, brightness) per variant of an original.
VARIANTS = (
    (False, 1.0, 0, 1.0),
    (True, 0.9, 0, 1.05),
    (False, 0.8, 4, 0.95),
    (True, 0.75, -4, 1.0),
    (False, 0.7, -7, 1.1),
    (True, 1.0, 7, 0.9),
    (False, 0.85, 10, 1.0),
)

DISTINCT = len(PERSON) * len(VARIANTS)


@functools.cache
def original(name: str) -> Image.Image:
    with Image.open(DATA / name) as image:
        return image.convert("RGB")


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def fit(image: Image.Image, short: int = 640) -> Image.Image:
    """Scale so the short side is `short` (the bot refuses photos under 512 px)."""
    scale = short / min(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)))


def variant(image: Image.Image, mirror: bool, zoom: float, degrees: float, light: float):
    """A crop anchored at the top centre (where the faces are), mirrored, rotated, relit."""
    w, h = image.size
    left = round(w * (1 - zoom) / 2)
    out = image.crop((left, 0, left + round(w * zoom), round(h * zoom)))
    if mirror:
        out = ImageOps.mirror(out)
    if degrees:
        out = out.rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor=(128, 128, 128))
    if light != 1.0:
        out = ImageEnhance.Brightness(out).enhance(light)
    return out


@functools.cache
def person(i: int, short: int = 640) -> bytes:
    """The i-th (0-20) distinct photo of one person: passes every check of the gate."""
    mirror, zoom, degrees, light = VARIANTS[i // len(PERSON) % len(VARIANTS)]
    base = original(PERSON[i % len(PERSON)])
    return jpeg(fit(variant(base, mirror, zoom, degrees, light), short))


def person_set(count: int, start: int = 0) -> list[bytes]:
    return [person(start + i) for i in range(count)]


def collage(*names: str) -> Image.Image:
    parts = [fit(original(n), 640) for n in names]
    canvas = Image.new("RGB", (sum(p.width for p in parts), 640), (200, 200, 200))
    x = 0
    for p in parts:
        canvas.paste(p.crop((0, 0, p.width, 640)), (x, 0))
        x += p.width
    return canvas


def _tiny_face() -> Image.Image:
    canvas = Image.new("RGB", (1600, 1200), (90, 120, 90))
    canvas.paste(original(PERSON[0]).resize((300, 375)), (700, 200))
    return canvas


def screenshot() -> Image.Image:
    """A phone screenshot: a status bar, chat bubbles and text, no photo in it."""
    img = Image.new("RGB", (720, 1280), (240, 240, 245))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 720, 60), fill=(30, 30, 30))
    draw.text((20, 20), "12:45   LTE  87%", fill=(255, 255, 255))
    for row in range(9):
        y = 100 + row * 125
        x = 40 if row % 2 else 260
        draw.rounded_rectangle((x, y, x + 420, y + 95), 20, fill=(255,) * 3, outline=(200,) * 3)
        for line in range(3):
            text = f"message {row}.{line} lorem ipsum"
            draw.text((x + 20, y + 15 + line * 25), text, fill=(0,) * 3)
    return img


def cartoon() -> Image.Image:
    """A drawn smiley: a face to a person, not to a face detector."""
    img = Image.new("RGB", (800, 800), (120, 190, 255))
    draw = ImageDraw.Draw(img)
    draw.ellipse((150, 150, 650, 650), fill=(255, 220, 0), outline=(0, 0, 0), width=8)
    draw.ellipse((280, 300, 340, 380), fill=(0, 0, 0))
    draw.ellipse((460, 300, 520, 380), fill=(0, 0, 0))
    draw.arc((260, 350, 540, 560), 20, 160, fill=(0, 0, 0), width=12)
    return img


#: Bad case → (picture, the verdict the gate must give).
BAD: dict[str, tuple[Callable[[], bytes], str]] = {
    "no_face": (lambda: jpeg(fit(original("coffee.jpg"))), "no_face"),
    "animal": (lambda: jpeg(fit(original("chelsea.jpg"))), "no_face"),
    "screenshot": (lambda: jpeg(screenshot()), "no_face"),
    "cartoon": (lambda: jpeg(cartoon()), "no_face"),
    "two_faces": (lambda: jpeg(collage("obama.jpg", "biden.jpg")), "several_faces"),
    "tiny_face": (lambda: jpeg(_tiny_face()), "tiny_face"),
    "blurry": (
        lambda: jpeg(fit(original("obama.jpg")).filter(ImageFilter.GaussianBlur(6))),
        "blurry",
    ),
    "dark": (
        lambda: jpeg(ImageEnhance.Brightness(fit(original("obama.jpg"))).enhance(0.15)),
        "too_dark",
    ),
    "overexposed": (
        lambda: jpeg(ImageEnhance.Brightness(fit(original("obama.jpg"))).enhance(2.5)),
        "overexposed",
    ),
}
