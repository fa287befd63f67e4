"""Likeness: a reference identity per portrait avatar and a score per generated picture.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

* `avatars.likeness_center real[]` (128 numbers: the element-wise median of the accepted
  training photos' face embeddings), `likeness_spread real` (the median distance of those
  embeddings to the centre) and `likeness_faces smallint` (how many embeddings it was made
  of; below 3 the identity is weak and no score is shown, `docs/likeness.md`). Computed by
  the bot when the training is requested; NULL for a style avatar or a set without faces.
  Erased with the avatar row (and so by `/delete_me`).
* `generated_images.likeness real` (0-100, the calibrated score of the best-matching face)
  and `likeness_distance real` (its raw embedding distance to the centre): written by the
  bot at delivery; NULL = not scored (no face, no identity, or the scoring timed out).
* `generations.likeness_retry boolean` (default false): a free re-draw, with a new seed, of
  the weak pictures of its `parent_id` generation; written once by the bot on INSERT. The
  unique partial index `uq_generations_likeness_retry (parent_id) WHERE likeness_retry`
  makes it at most one per generation, whatever redelivery or race.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOT = "aisha_bot"
AVATAR_COLUMNS = (
    sa.Column("likeness_center", postgresql.ARRAY(sa.REAL()), nullable=True),
    sa.Column("likeness_spread", sa.REAL(), nullable=True),
    sa.Column("likeness_faces", sa.SmallInteger(), nullable=True),
)
IMAGE_COLUMNS = (
    sa.Column("likeness", sa.REAL(), nullable=True),
    sa.Column("likeness_distance", sa.REAL(), nullable=True),
)


def upgrade() -> None:
    for column in AVATAR_COLUMNS:
        op.add_column("avatars", column)
    for column in IMAGE_COLUMNS:
        op.add_column("generated_images", column)
    op.create_check_constraint(
        "ck_generated_images_likeness_range",
        "generated_images",
        "likeness IS NULL OR likeness BETWEEN 0 AND 100",
    )
    op.add_column(
        "generations",
        sa.Column("likeness_retry", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index(
        "uq_generations_likeness_retry",
        "generations",
        ["parent_id"],
        unique=True,
        postgresql_where=sa.text("likeness_retry"),
    )
    names = ", ".join(c.name for c in AVATAR_COLUMNS)
    op.execute(f"GRANT UPDATE ({names}) ON avatars TO {BOT}")
    names = ", ".join(c.name for c in IMAGE_COLUMNS)
    op.execute(f"GRANT UPDATE ({names}) ON generated_images TO {BOT}")


def downgrade() -> None:
    op.drop_index("uq_generations_likeness_retry", table_name="generations")
    op.drop_column("generations", "likeness_retry")
    op.drop_constraint("ck_generated_images_likeness_range", "generated_images", type_="check")
    for column in reversed(IMAGE_COLUMNS):
        op.drop_column("generated_images", column.name)
    for column in reversed(AVATAR_COLUMNS):
        op.drop_column("avatars", column.name)
