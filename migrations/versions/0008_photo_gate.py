"""Photo quality gate: what the gate measured on each accepted training photo.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

The bot analyses every training photo before storing it (faces, face size, sharpness,
exposure, a perceptual hash, a face embedding). Refused photos get no row; accepted ones
keep the measurements, so later photos are compared with them (near-duplicates by `phash`,
the same person by `embedding`) and the summary before "Start training" names the photos
with `warnings` (soft verdict codes) without analysing anything again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOT = "aisha_bot"
COLUMNS = (
    sa.Column("face_count", sa.SmallInteger(), nullable=True),
    sa.Column("face_area_ratio", sa.REAL(), nullable=True),
    sa.Column("sharpness", sa.REAL(), nullable=True),
    sa.Column("brightness", sa.REAL(), nullable=True),
    sa.Column("phash", sa.BigInteger(), nullable=True),
    sa.Column("embedding", postgresql.ARRAY(sa.REAL()), nullable=True),
    sa.Column(
        "warnings", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
    ),
)


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("photos", column)
    names = ", ".join(c.name for c in COLUMNS)
    op.execute(f"GRANT UPDATE ({names}) ON photos TO {BOT}")


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.drop_column("photos", column.name)
