"""The photo validator: decodable JPEG/PNG/WebP/HEIC, big enough, EXIF-rotated, bombs refused."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from services.bot.app.photo_validation import (
    MAX_PIXELS,
    PhotoRejected,
    is_image_document,
    validate_photo,
)


def image_bytes(fmt: str, size: tuple[int, int] = (600, 600), color=(200, 30, 30), **kw) -> bytes:
    mode = "RGBA" if fmt == "PNG" and kw.pop("alpha", False) else "RGB"
    img = Image.new(mode, size, color if mode == "RGB" else (*color, 128))
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose header claims huge dimensions (never decoded by the guard)."""
    raw = image_bytes("PNG", (1, 1))
    ihdr = struct.pack(">II", width, height) + raw[24:29]
    chunk = b"IHDR" + ihdr
    return raw[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + raw[33:]


def reason(data: bytes) -> str:
    with pytest.raises(PhotoRejected) as info:
        validate_photo(data)
    return info.value.code


def test_accepts_jpeg_and_normalizes_to_jpeg() -> None:
    photo = validate_photo(image_bytes("JPEG"))
    assert (photo.width, photo.height, photo.source_format) == (600, 600, "jpeg")
    assert Image.open(io.BytesIO(photo.data)).format == "JPEG"


def test_webp_is_accepted() -> None:
    assert validate_photo(image_bytes("WEBP")).source_format == "webp"


def test_png_with_alpha_is_flattened() -> None:
    photo = validate_photo(image_bytes("PNG", alpha=True))
    assert Image.open(io.BytesIO(photo.data)).mode == "RGB"


def test_gif_is_rejected() -> None:
    assert reason(image_bytes("GIF")) == "bad_format"


def test_non_image_bytes_are_rejected() -> None:
    assert reason(b"%PDF-1.4 definitely not a picture") == "not_image"


def test_truncated_image_is_rejected() -> None:
    assert reason(image_bytes("JPEG")[:300]) == "not_image"


def test_tiny_image_is_rejected() -> None:
    assert reason(image_bytes("JPEG", (511, 900))) == "too_small"


def test_huge_dimensions_are_refused_before_decoding() -> None:
    assert MAX_PIXELS < 40_000 * 40_000
    assert reason(png_claiming(40_000, 40_000)) == "too_many_pixels"


def test_too_big_file_is_rejected() -> None:
    with pytest.raises(PhotoRejected) as info:
        validate_photo(image_bytes("JPEG"), max_bytes=100)
    assert info.value.code == "too_big_file"


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    photo = validate_photo(image_bytes("JPEG", (800, 600), exif=exif))
    assert (photo.width, photo.height) == (600, 800)


def test_same_pixels_hash_the_same_whatever_the_container() -> None:
    png = validate_photo(image_bytes("PNG", color=(10, 20, 30)))
    again = validate_photo(image_bytes("PNG", color=(10, 20, 30), compress_level=1))
    other = validate_photo(image_bytes("PNG", color=(10, 20, 31)))
    assert png.sha256 == again.sha256 != other.sha256


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_an_animated_image_is_refused_as_animated(fmt: str) -> None:
    """An APNG or animated WebP decodes as its first frame; it is not a photo of anyone."""
    frames = [Image.new("RGB", (600, 600), (i * 80, 30, 30)) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.raises(PhotoRejected) as refused:
        validate_photo(buf.getvalue())
    assert refused.value.code == "animated"


def test_heic_is_converted_on_intake() -> None:
    """An iPhone photo sent as a file: HEIC made here by pillow-heif from a sample picture."""
    source = Image.new("RGB", (900, 700), (30, 140, 220))
    buf = io.BytesIO()
    source.save(buf, "HEIF", quality=90)
    photo = validate_photo(buf.getvalue())
    assert (photo.width, photo.height, photo.source_format) == (900, 700, "heif")
    stored = Image.open(io.BytesIO(photo.data))
    assert stored.format == "JPEG"
    assert abs(stored.getpixel((450, 350))[2] - 220) < 12  # the picture, not a blank


def test_a_small_heic_is_refused_like_any_small_photo() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (300, 300), (30, 140, 220)).save(buf, "HEIF")
    assert reason(buf.getvalue()) == "too_small"


@pytest.mark.parametrize(
    ("mime", "name", "taken"),
    [
        ("image/heic", "IMG_1.HEIC", True),
        ("application/octet-stream", "IMG_2.heic", True),  # how some clients type HEIC
        (None, "photo.HEIF", True),
        ("image/jpeg", None, True),
        ("application/pdf", "cv.pdf", False),
        ("application/octet-stream", "notes.txt", False),
    ],
)
def test_image_documents_are_told_by_type_or_name(mime, name, taken) -> None:
    assert is_image_document(mime, name) is taken
