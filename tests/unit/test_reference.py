"""Reference photos, the pure parts: the three strengths and FAL's values, the arguments
sent (inside the documented schema the emulator enforces), the cost, and the checks a
reference passes before anything is stored — not an image, animated, too large in bytes or
pixels — each with its own locale code."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from aiogram.types import Animation, Chat, Document, Message
from PIL import Image

from contracts import GenerationRequested, ReferenceSource
from sandbox.fal.image_to_image import validate
from sandbox.fal.images import photo
from services.bot.app.photo_validation import PhotoRejected
from services.bot.reference import intake
from services.bot.reference.service import aspect_of
from services.bot.reference.strengths import STRENGTHS, step_of, strength_of
from services.trainer.reference_plan import (
    STRENGTH_RANGE,
    estimate_reference_cost,
    reference_arguments,
)


def test_three_strengths_rise_inside_fals_range_and_map_back() -> None:
    values = [strength_of(step) for step in sorted(STRENGTHS)]
    assert len(values) == 3
    assert values == sorted(values)
    assert len(set(values)) == 3
    assert all(STRENGTH_RANGE[0] <= v <= STRENGTH_RANGE[1] for v in values)
    assert all(step_of(strength_of(step)) == step for step in STRENGTHS)
    assert step_of(None) == 2
    with pytest.raises(KeyError):
        strength_of(4)


def _event(strength: float) -> GenerationRequested:
    source = ReferenceSource(reference_id="r", object_name="references/1/r.jpg", width=768,
                             height=1024, strength=strength)  # fmt: skip
    return GenerationRequested(
        event_id="e", occurred_at=datetime.now(UTC), generation_id="g", user_id=1,
        avatar_id="a", prompt="photo of TOK woman", aspect_ratio="3:4", num_images=1, seed=9,
        credits=2, reference=source,
    )  # fmt: skip


@pytest.mark.parametrize("step", sorted(STRENGTHS))
def test_arguments_are_inside_the_documented_schema(step: int) -> None:
    event = _event(strength_of(step))
    arguments = reference_arguments("https://v3.fal.media/files/x/r.jpg", event, "https://l", 1.0)
    assert arguments["strength"] == strength_of(step)
    assert arguments["loras"] == [{"path": "https://l", "scale": 1.0}]
    assert arguments["image_url"].endswith("r.jpg")
    assert "image_size" not in arguments  # the output keeps the photo's size
    assert validate(arguments) == []


def test_the_emulator_refuses_a_strength_out_of_range() -> None:
    arguments = reference_arguments("u", _event(1.5), "https://l", 1.0)
    (error,) = validate(arguments)
    assert error["loc"] == ["body", "strength"]


def test_cost_is_per_output_megapixel_of_the_photo() -> None:
    assert estimate_reference_cost(_event(0.85).reference, 0.035) == pytest.approx(0.0275, 1e-3)  # type: ignore[arg-type]


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def test_a_good_photo_is_kept_and_shrunk_to_a_megapixel_block() -> None:
    checked = intake.check(photo(1, (2000, 1500)))
    assert max(checked.width, checked.height) == intake.STORED_SIDE
    with Image.open(io.BytesIO(checked.data)) as stored:
        assert (stored.format, stored.size) == ("JPEG", (1024, 768))


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"%PDF-1.4 not a picture at all", "not_image"),
        (
            _encoded(Image.new("RGB", (300, 300), "red"), "GIF", save_all=True,
                     append_images=[Image.new("RGB", (300, 300), "blue")]),
            "animated",
        ),
        (_encoded(Image.new("RGB", (300, 300), "red"), "GIF"), "animated"),
        (
            _encoded(Image.new("RGB", (300, 300), "red"), "WEBP", save_all=True,
                     append_images=[Image.new("RGB", (300, 300), "blue")]),
            "animated",
        ),
        (_encoded(Image.new("L", (8100, 8000)), "PNG"), "too_many_pixels"),
        (b"\xff" * (intake.MAX_BYTES + 1), "too_big_file"),
        (photo(2, (200, 200)), "too_small"),
    ],
    ids=["pdf", "animated-gif", "gif", "animated-webp", "64mp", "20mb", "small"],
)  # fmt: skip
def test_a_bad_reference_is_refused_with_its_code(raw: bytes, code: str) -> None:
    with pytest.raises(PhotoRejected) as refused:
        intake.check(raw)
    assert refused.value.code == code


def _message(**fields: object) -> Message:
    return Message(message_id=1, date=datetime.now(UTC), chat=Chat(id=1, type="private"),
                   **fields)  # type: ignore[arg-type]  # fmt: skip


def test_what_telegram_sends_is_sorted_before_any_download() -> None:
    pdf = Document(file_id="f", file_unique_id="u", mime_type="application/pdf", file_name="a.pdf")
    gif = Document(file_id="f", file_unique_id="u", mime_type="image/gif", file_name="a.gif")
    jpeg = Document(file_id="f", file_unique_id="u", mime_type="image/jpeg", file_size=10)
    animation = Animation(file_id="f", file_unique_id="u", width=1, height=1, duration=1)
    for message, code in (
        (_message(document=pdf), "not_image"),
        (_message(document=gif), "animated"),
        (_message(animation=animation, document=gif), "animated"),
        (_message(text="hello"), "not_image"),
    ):
        with pytest.raises(PhotoRejected) as refused:
            intake.upload_of(message)
        assert refused.value.code == code
    assert intake.upload_of(_message(document=jpeg)).file_size == 10


def test_the_aspect_named_is_the_nearest() -> None:
    assert aspect_of(768, 1024) == "3:4"
    assert aspect_of(1024, 1024) == "1:1"
    assert aspect_of(1024, 576) == "16:9"
