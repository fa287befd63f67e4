"""A style avatar has no gender.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

A style LoRA learns a look from pictures of that look (`is_style`: no masks, no
captioning), not a person, so the bot no longer asks "who is in the photos" for one and
`avatars.gender` is NULL for it. A portrait still needs it (the generation prompt names
"<trigger> woman"), which `ck_avatars_gender_for_portrait` keeps true. Existing style
avatars keep the gender they were given.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHECK = "ck_avatars_gender_for_portrait"


def upgrade() -> None:
    op.alter_column("avatars", "gender", nullable=True)
    op.create_check_constraint(CHECK, "avatars", "gender IS NOT NULL OR training_type = 'style'")


def downgrade() -> None:
    op.drop_constraint(CHECK, "avatars", type_="check")
    op.execute("UPDATE avatars SET gender = 'other' WHERE gender IS NULL")
    op.alter_column("avatars", "gender", nullable=False)
