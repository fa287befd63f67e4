"""Upscale arithmetic and shapes: our price per factor and source size, FAL's estimated
cost, the arguments sent (inside the documented schema, which the emulator enforces), and
the upscaler's one-image result read like a FLUX album."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from contracts import GenerationRequested, UpscaleSource
from sandbox.fal.upscaler import validate
from services.bot.app.pricing import Pricing
from services.status.images import result_urls
from services.trainer.upscale_plan import estimate_upscale_cost, upscale_arguments


@pytest.mark.parametrize(
    ("factor", "size", "price"),
    [(2, (1024, 1024), 5), (4, (1024, 1024), 20), (2, (576, 1024), 5), (2, (2048, 2048), 20),
     (4, (1025, 1024), 40)],
)  # fmt: skip
def test_price_per_factor_and_started_block(factor: int, size: tuple[int, int], price: int) -> None:
    assert Pricing(upscale_2x=5, upscale_4x=20).upscale(factor, *size) == price


def _source(factor: int) -> UpscaleSource:
    return UpscaleSource(
        image_id="i", object_name="gen/g/0.jpg", width=1024, height=1024, factor=factor
    )


def test_cost_is_per_output_megapixel() -> None:
    assert estimate_upscale_cost(_source(2), 0.03) == pytest.approx(0.1258, abs=1e-4)
    assert estimate_upscale_cost(_source(4), 0.03) == pytest.approx(0.5033, abs=1e-4)


def test_arguments_are_inside_the_documented_schema() -> None:
    event = GenerationRequested(
        event_id="e", occurred_at=datetime.now(UTC), generation_id="g", user_id=1,
        avatar_id=None, prompt="p", aspect_ratio="1:1", num_images=1, seed=9,
        upscale=_source(4),
    )  # fmt: skip
    arguments = upscale_arguments("https://v3.fal.media/files/x/y.jpg", event)
    assert arguments["upscale_factor"] == 4
    assert arguments["seed"] == 9
    assert validate(arguments) == []


def test_an_upscaler_result_is_one_picture() -> None:
    payload = {"image": {"url": "https://v3.fal.media/files/a/b.jpg", "width": 2048}, "seed": 1}
    assert result_urls(payload) == ["https://v3.fal.media/files/a/b.jpg"]
