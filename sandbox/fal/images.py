"""Pillow drawings standing in for FLUX outputs, and sample training archives."""

from __future__ import annotations

import hashlib
import io
import textwrap
import zipfile

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

from sandbox.fal import faces

IMAGE_SIZE_PRESETS: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
FORMATS: dict[str, tuple[str, str]] = {
    "jpeg": ("JPEG", "image/jpeg"),
    "png": ("PNG", "image/png"),
}


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()


def _encode(image: Image.Image, output_format: str) -> bytes:
    pil_format, _ = FORMATS[output_format]
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **({"quality": 85} if pil_format == "JPEG" else {}))
    return buffer.getvalue()


def draw(
    prompt: str,
    seed: int,
    index: int,
    width: int,
    height: int,
    output_format: str = "jpeg",
    salt: str = "",
    face: bytes | None = None,
) -> bytes:
    """A distinct picture for (prompt, seed, index, salt): a hashed gradient, discs and text,
    and the LoRA's person (`faces.paste`) when it carries a photo."""
    digest = _digest(prompt, seed, index, salt)
    top, bottom = tuple(digest[0:3]), tuple(digest[3:6])
    mask = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(
        Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top), mask
    )
    pen = ImageDraw.Draw(image)
    for n in range(4):
        cx = digest[8 + n] * width // 256
        cy = digest[12 + n] * height // 256
        r = max(4, digest[16 + n] * min(width, height) // 1024)
        colour = (digest[20 + n], digest[24 + n], digest[28 + n])
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour, outline=(255, 255, 255))
    if face is not None:
        image = faces.paste(image, face)
        pen = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, min(width, height) // 24))
    caption = textwrap.fill(f"{prompt} · seed {seed} · #{index + 1}", width=32)
    pen.multiline_text(
        (12, 12), caption, fill=(255, 255, 255), font=font, stroke_width=2, stroke_fill=(0, 0, 0)
    )
    return _encode(image, output_format)


def black(width: int, height: int, output_format: str = "jpeg") -> bytes:
    """What FAL returns in place of an image its safety checker flagged."""
    return _encode(Image.new("RGB", (width, height), (0, 0, 0)), output_format)


def photo(index: int, size: tuple[int, int] = (256, 256)) -> bytes:
    """A JPEG 'portrait' for training archives."""
    return draw("sandbox portrait", 7, index, size[0], size[1], "jpeg", salt="photo")


def training_archive(count: int, size: tuple[int, int] = (256, 256), junk: int = 0) -> bytes:
    """A zip of `count` JPEG photos (plus `junk` undecodable files), like the product uploads."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for n in range(count):
            archive.writestr(f"photo_{n + 1:02d}.jpg", photo(n, size))
        for n in range(junk):
            archive.writestr(f"notes_{n + 1}.jpg", b"not an image")
    return buffer.getvalue()


def count_images(archive: bytes) -> int:
    """How many entries of a zip Pillow can decode (raises zipfile.BadZipFile)."""
    found = 0
    with zipfile.ZipFile(io.BytesIO(archive)) as bundle:
        for info in bundle.infolist():
            if info.is_dir() or info.file_size > 50 * 1024 * 1024:
                continue
            try:
                with Image.open(io.BytesIO(bundle.read(info))) as image:
                    image.verify()
            except Exception:  # noqa: BLE001 - any decoder error means "not an image"
                continue
            found += 1
    return found


def describe(data: bytes) -> str:
    """A deterministic 'detailed caption' of an image."""
    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB").resize((1, 1))
        red, green, blue = rgb.getpixel((0, 0))  # type: ignore[misc]
        width, height = image.size
    shape = "square" if width == height else ("portrait" if height > width else "landscape")
    return (
        f"The image is a {shape} photograph of {width}x{height} pixels. "
        f"It shows a person in front of a softly lit background whose dominant colour is "
        f"rgb({red}, {green}, {blue}). The lighting is even and the subject faces the camera."
    )


def size_of(data: bytes) -> tuple[int, int]:
    """(width, height) of a picture; ValueError when it is not one."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ValueError(str(exc)) from exc
