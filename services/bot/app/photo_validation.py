"""Is this upload a usable training photo? Pure Pillow, run in a worker thread.

The stored copy is normalized: EXIF orientation applied, converted to RGB JPEG, so FAL sees
what the user saw and two uploads of the same picture hash the same (the hash is over the
normalized pixels, not the file bytes). iPhone photos come as HEIC/HEIF (often "as file"):
pillow-heif's opener decodes them, and they are converted like any other format.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

register_heif_opener()  # Pillow then opens HEIC/HEIF like a JPEG (format "HEIF")

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "HEIF"})
#: File names of image documents some clients send as application/octet-stream.
IMAGE_SUFFIXES = (".heic", ".heif", ".jpg", ".jpeg", ".png", ".webp")
MAX_BYTES = 20 * 1024 * 1024
MIN_SIDE = 512
#: Far above any camera (a 50 MP photo is 50M pixels); beyond it decoding is a memory attack.
MAX_PIXELS = 64_000_000
#: Stored copies are at most this long: trainers work at 512-1024 px, and it bounds memory.
STORED_MAX_SIDE = 2048
JPEG_QUALITY = 92


@dataclass(frozen=True, kw_only=True)
class Upload:
    """One file the user sent: a photo's largest size or an image document."""

    file_id: str
    file_unique_id: str
    file_size: int | None


def is_image_document(mime_type: str | None, file_name: str | None) -> bool:
    """A document worth decoding as a photo: an image MIME type, or an image file name
    (HEIC files often arrive typed application/octet-stream)."""
    if (mime_type or "").startswith("image/"):
        return True
    return (file_name or "").lower().endswith(IMAGE_SUFFIXES)


class PhotoRejected(Exception):
    """The upload is not usable; `code` names the reason for the locale files."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


@dataclass(frozen=True, kw_only=True)
class ValidPhoto:
    data: bytes
    sha256: str
    width: int
    height: int
    source_format: str
    size_bytes: int


def validate_photo(
    raw: bytes, *, min_side: int = MIN_SIDE, max_bytes: int = MAX_BYTES
) -> ValidPhoto:
    """Decode, check and normalize one photo; raises `PhotoRejected` with a reason code."""
    if len(raw) > max_bytes:
        raise PhotoRejected("too_big_file")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(raw)) as probe:
                fmt = probe.format or ""
                if fmt not in ALLOWED_FORMATS:
                    raise PhotoRejected("bad_format")
                if getattr(probe, "is_animated", False):  # an APNG / animated WebP
                    raise PhotoRejected("animated")
                if probe.width * probe.height > MAX_PIXELS:
                    raise PhotoRejected("too_many_pixels")
                if min(probe.size) < min_side:  # decided from the header: no decoding
                    raise PhotoRejected("too_small")
                image = _decode(probe)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PhotoRejected("too_many_pixels") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise PhotoRejected("not_image") from None
    if min(image.size) < min_side:
        raise PhotoRejected("too_small")
    rgb = _to_rgb(image)
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=JPEG_QUALITY)
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode() + rgb.tobytes()).hexdigest()
    return ValidPhoto(
        data=out.getvalue(),
        sha256=digest,
        width=rgb.width,
        height=rgb.height,
        source_format=fmt.lower(),
        size_bytes=len(raw),
    )


def _decode(probe: Image.Image) -> Image.Image:
    """Decode once and shrink at once: a 64 MP picture that compresses to a few hundred KB
    would otherwise hold ~1 GB across the copies below. JPEGs are decoded at a reduced DCT
    scale (`draft`); the rest are shrunk right after decoding. No copy is made on the way."""
    probe.draft("RGB", (STORED_MAX_SIDE, STORED_MAX_SIDE))
    probe.load()
    ImageOps.exif_transpose(probe, in_place=True)
    probe.thumbnail((STORED_MAX_SIDE, STORED_MAX_SIDE), reducing_gap=1.5)
    return probe


def _to_rgb(image: Image.Image) -> Image.Image:
    """Flatten transparency onto white: FAL trains on RGB and JPEG has no alpha."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
