"""Upscales: a generation that enlarges one stored picture instead of drawing new ones.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

An upscale is a `generations` row (so it is charged, submitted, tracked, stored, refunded
and counted in the spend limit like every generation) with `source_image_id`, the picture it
enlarges, and `upscale_factor` (2 or 4). Both are written once by the bot on INSERT, so no
role gets UPDATE on them. Deleting the source picture keeps the upscale (SET NULL).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("generations", sa.Column("source_image_id", sa.Uuid(), nullable=True))
    op.add_column("generations", sa.Column("upscale_factor", sa.SmallInteger(), nullable=True))
    op.create_foreign_key(
        "fk_generations_source_image_id_generated_images",
        "generations",
        "generated_images",
        ["source_image_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_check_constraint(
        "ck_generations_upscale_factor_values",
        "generations",
        "upscale_factor IS NULL OR upscale_factor IN (2, 4)",
    )
    op.create_index("ix_generations_source_image_id", "generations", ["source_image_id"])


def downgrade() -> None:
    op.drop_index("ix_generations_source_image_id", table_name="generations")
    op.drop_constraint("ck_generations_upscale_factor_values", "generations", type_="check")
    op.drop_constraint(
        "fk_generations_source_image_id_generated_images", "generations", type_="foreignkey"
    )
    op.drop_column("generations", "upscale_factor")
    op.drop_column("generations", "source_image_id")
