"""Which deliveries get a free re-draw: decided before any SQL or message for the cases
the rule excludes (no weak picture, a pack, an upscale or reference job, a quick generation
without an avatar); the once-per-generation bound is in the database (integration test)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from services.bot.generation.likeness_retry import LikenessRetry
from services.bot.generation.service import Generation, GenerationStatus


class _Untouchable:
    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"{name} must not be used")


BASE = Generation(
    id=uuid4(), user_id=1, avatar_id=uuid4(), prompt="p", user_prompt=None, style_id=None,
    aspect_ratio="1:1", num_images=2, seed=1, lora_scale=None,
    status=GenerationStatus.SUBMITTED, parent_id=None, progress_chat_id=None,
    progress_message_id=None, created_at=datetime.now(UTC),
)  # fmt: skip


@pytest.mark.parametrize(
    ("generation", "weak"),
    [
        (BASE, 0),
        (replace(BASE, avatar_id=None), 1),
        (replace(BASE, pack_order_id=uuid4()), 1),
        (replace(BASE, source_image_id=uuid4(), upscale_factor=2), 1),
        (replace(BASE, reference_id=uuid4(), reference_strength=0.5), 1),
    ],
    ids=["nothing weak", "no avatar", "a pack", "an upscale", "a reference"],
)
async def test_excluded_deliveries_get_no_redraw(generation: Generation, weak: int) -> None:
    retry = LikenessRetry(_Untouchable(), _Untouchable())  # type: ignore[arg-type]
    assert await retry.offer(generation, weak, _Untouchable()) is None  # type: ignore[arg-type]
