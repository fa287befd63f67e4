"""Animations: a generation that turns one stored picture into a short video.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06

An animation is a `generations` row (so it is charged, submitted, tracked, stored, refunded
and counted in the spend limit like every generation) with `source_image_id` (0010), the
picture it starts from, and `animation_seconds` (5 or 10), the clip's length; the motion
prompt is the row's `prompt` (the user's own words also in `user_prompt`). Written once by
the bot on INSERT, so no role gets UPDATE on it. A row is an upscale or an animation, never
both. Its result is a `generated_images` row whose `content_type` is `video/mp4`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("generations", sa.Column("animation_seconds", sa.SmallInteger(), nullable=True))
    op.create_check_constraint(
        "ck_generations_animation_seconds_values",
        "generations",
        "animation_seconds IS NULL OR animation_seconds IN (5, 10)",
    )
    op.create_check_constraint(
        "ck_generations_one_derived_kind",
        "generations",
        "animation_seconds IS NULL OR upscale_factor IS NULL",
    )


def downgrade() -> None:
    op.drop_constraint("ck_generations_one_derived_kind", "generations", type_="check")
    op.drop_constraint("ck_generations_animation_seconds_values", "generations", type_="check")
    op.drop_column("generations", "animation_seconds")
