"""Training checks: a finished portrait training is scored on test portraits before "ready".

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

* `training_checks` (bot-owned, one row per checked attempt of a portrait avatar; erased
  with the avatar, so by `/delete_me`): the check's `state` (`checking` → `passed` | `poor`
  | `skipped`, with the skip's `reason`), the test portraits' `scores` and their median
  `score` (0-100), the user's `decision` on a poor one (`redo` | `refund` | `keep`), the
  attempt whose charge a refund gives back (`paid_attempt`: a free redo's check refunds
  the attempt that was paid) and how many photos the redo `left_out`. The check's cost is
  its generation's `cost_usd` (`generation_id`; `docs/likeness.md`).
* `generations.training_check boolean` (default false): the test portraits of a check;
  written once by the bot on INSERT, never charged, kept out of the gallery; the partial
  index `ix_generations_training_check (avatar_id) WHERE training_check` finds an avatar's
  running check when its live message moves.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOT = "aisha_bot"
ROLES = "aisha_bot, aisha_trainer, aisha_status"
UPDATED = ("state", "reason", "scores", "score", "decision", "decided_at", "checked_at", "left_out")


def upgrade() -> None:
    op.create_table(
        "training_checks",
        sa.Column("avatar_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("generation_id", sa.Uuid(), nullable=True),
        sa.Column("paid_attempt", sa.Integer(), nullable=False),
        sa.Column("redo", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("scores", sa.ARRAY(sa.REAL()), nullable=True),
        sa.Column("score", sa.REAL(), nullable=True),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("left_out", sa.SmallInteger(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('checking', 'passed', 'poor', 'skipped')", name="ck_training_checks_state"
        ),
        sa.CheckConstraint(
            "decision IS NULL OR (state = 'poor' AND decision IN ('redo', 'refund', 'keep'))",
            name="ck_training_checks_decision",
        ),
        sa.CheckConstraint(
            "score IS NULL OR score BETWEEN 0 AND 100", name="ck_training_checks_score_range"
        ),
        sa.ForeignKeyConstraint(
            ["avatar_id"],
            ["avatars.id"],
            name="fk_training_checks_avatar_id_avatars",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name="fk_training_checks_generation_id_generations",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("avatar_id", "attempt", name="pk_training_checks"),
    )
    op.create_index("ix_training_checks_created_at", "training_checks", ["created_at"])
    op.create_index(
        "ix_training_checks_generation_id", "training_checks", ["generation_id"], unique=True
    )
    op.execute(f"GRANT SELECT ON training_checks TO {ROLES}")
    op.execute(f"GRANT INSERT, DELETE ON training_checks TO {BOT}")
    op.execute(f"GRANT UPDATE ({', '.join(UPDATED)}) ON training_checks TO {BOT}")
    op.add_column(
        "generations",
        sa.Column("training_check", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_index(
        "ix_generations_training_check",
        "generations",
        ["avatar_id"],
        postgresql_where=sa.text("training_check"),
    )


def downgrade() -> None:
    op.drop_index("ix_generations_training_check", table_name="generations")
    op.drop_column("generations", "training_check")
    op.drop_index("ix_training_checks_generation_id", table_name="training_checks")
    op.drop_index("ix_training_checks_created_at", table_name="training_checks")
    op.drop_table("training_checks")
