"""Animation arithmetic and shapes: FAL's estimated cost of a clip, the arguments sent
(inside the documented schema, which the emulator enforces), the video result read like a
one-picture album, its size read from the MP4 itself, and the job's kind on the bot side."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from contracts import AnimateSource, GenerationRequested, decode, encode
from sandbox.fal.animator import animate, validate
from sandbox.fal.images import photo
from services.bot.app.pricing import Pricing
from services.bot.generation.service import Generation, GenerationStatus
from services.status.images import ResultsLost, _inspect, result_urls
from services.trainer.animate_plan import animate_arguments, estimate_animation_cost


def _source(seconds: int = 5, motion: str = "she smiles") -> AnimateSource:
    return AnimateSource(
        image_id="i", object_name="gen/g/0.jpg", width=768, height=1024, seconds=seconds,
        motion_prompt=motion,
    )  # fmt: skip


def test_cost_is_the_clip_price_and_a_fifth_per_further_second() -> None:
    assert estimate_animation_cost(_source(5), 0.28) == pytest.approx(0.28)
    assert estimate_animation_cost(_source(10), 0.28) == pytest.approx(0.56)


def test_price_is_from_the_environment_and_free_jobs_are_free() -> None:
    assert Pricing().animation == 25
    assert Pricing.free_jobs().animation == 0


def test_arguments_are_inside_the_documented_schema() -> None:
    arguments = animate_arguments("https://v3.fal.media/files/x/y.jpg", _source())
    assert arguments["duration"] == "5"
    assert arguments["prompt"] == "she smiles"
    assert validate(arguments) == []


def test_the_request_carries_the_picture_and_survives_the_wire() -> None:
    event = GenerationRequested(
        event_id="e", occurred_at=datetime.now(UTC), generation_id="g", user_id=1,
        avatar_id=None, prompt="p", aspect_ratio="3:4", num_images=1, seed=9, credits=25,
        animate=_source(),
    )  # fmt: skip
    again = decode("aisha.generation.requested", encode(event))
    assert isinstance(again, GenerationRequested)
    assert again.animate == _source()
    assert again.upscale is None


def test_a_video_result_is_one_file_and_its_size_is_read_from_the_mp4() -> None:
    payload = {"video": {"url": "https://v3.fal.media/files/a/output.mp4"}}
    assert result_urls(payload) == ["https://v3.fal.media/files/a/output.mp4"]
    clip, width, height = animate(photo(3, (300, 400)), 300, 400, 5)
    assert _inspect(clip) == (width, height, "video/mp4", "mp4")
    assert (width, height) == (540, 720)


def test_bytes_that_are_neither_picture_nor_mp4_are_lost() -> None:
    with pytest.raises(ResultsLost):
        _inspect(b"\x00\x00\x00\x10ftypisom" + b"\x00" * 40)


@pytest.mark.parametrize(
    ("upscale", "seconds", "kind"),
    [(None, None, "image"), (2, None, "upscale"), (None, 5, "animation")],
)
def test_the_kind_picks_the_face_of_the_job(
    upscale: int | None, seconds: int | None, kind: str
) -> None:
    generation = Generation(
        id=uuid4(), user_id=1, avatar_id=None, prompt="p", user_prompt=None, style_id=None,
        aspect_ratio="1:1", num_images=1, seed=1, lora_scale=None,
        status=GenerationStatus.PENDING, parent_id=None, progress_chat_id=None,
        progress_message_id=None, created_at=datetime.now(UTC), upscale_factor=upscale,
        animation_seconds=seconds,
    )  # fmt: skip
    assert generation.kind == kind
