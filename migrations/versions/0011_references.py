"""Reference photos: the user's own picture re-drawn with their avatar (image-to-image).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

* `reference_photos`: one stored reference picture of a user for one avatar (the file in
  the photos bucket, `references/<user>/<id>.jpg`, written before the row). Handled like a
  training photo: `/delete_me` deletes rows and files, the retention sweep deletes those
  older than the photo retention once no job uses them. The bot inserts and deletes; nobody
  updates (every column is written once).
* `generations.reference_id` (→ reference_photos SET NULL: the job outlives its reference)
  and `reference_strength` (FAL's `strength`, 0.01–1): a generation that re-draws that
  photo. Both written once by the bot on INSERT, so no role gets UPDATE on them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOT = "aisha_bot"
ROLES = ", ".join((BOT, "aisha_trainer", "aisha_status"))


def upgrade() -> None:
    op.create_table(
        "reference_photos",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("avatar_id", sa.Uuid(), nullable=False),
        sa.Column("object_name", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name="fk_reference_photos_user_id_users",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["avatar_id"],
            ["avatars.id"],
            name="fk_reference_photos_avatar_id_avatars",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_reference_photos"),
        sa.UniqueConstraint("object_name", name="uq_reference_photos_object_name"),
    )
    op.create_index("ix_reference_photos_user_id", "reference_photos", ["user_id"])
    op.create_index("ix_reference_photos_created_at", "reference_photos", ["created_at"])
    op.execute(f"GRANT SELECT ON reference_photos TO {ROLES}")
    op.execute(f"GRANT INSERT, DELETE ON reference_photos TO {BOT}")

    op.add_column("generations", sa.Column("reference_id", sa.Uuid(), nullable=True))
    op.add_column("generations", sa.Column("reference_strength", sa.REAL(), nullable=True))
    op.create_foreign_key(
        "fk_generations_reference_id_reference_photos",
        "generations",
        "reference_photos",
        ["reference_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_check_constraint(
        "ck_generations_reference_strength_range",
        "generations",
        "reference_strength IS NULL OR reference_strength BETWEEN 0.01 AND 1",
    )
    op.create_index("ix_generations_reference_id", "generations", ["reference_id"])


def downgrade() -> None:
    op.drop_index("ix_generations_reference_id", table_name="generations")
    op.drop_constraint("ck_generations_reference_strength_range", "generations", type_="check")
    op.drop_constraint(
        "fk_generations_reference_id_reference_photos", "generations", type_="foreignkey"
    )
    op.drop_column("generations", "reference_strength")
    op.drop_column("generations", "reference_id")
    op.drop_index("ix_reference_photos_created_at", table_name="reference_photos")
    op.drop_index("ix_reference_photos_user_id", table_name="reference_photos")
    op.drop_table("reference_photos")
