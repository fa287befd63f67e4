"""Ledger state `waiting`: a training waits for a slot in our own line, never failed for it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

* `fal_submissions.state` gains `waiting`: the request is above `TRAINER_MAX_CONCURRENT`
  (our spend/fairness limit). Before, the trainer nak'ed it for ~105 minutes and then
  failed it as `fal_error`; FAL itself queues above its account limit and never rejects
  (docs/decisions.md, "Waiting for a training slot").
* `waiting_since` orders the line; `ahead` is the place last told to the user; `request`
  holds the encoded `TrainingRequested` until the trainer releases the row (then it is
  republished and the column cleared). The trainer may UPDATE all three.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRAINER = "aisha_trainer"
CHECK = "ck_fal_submissions_state"
STATES = "'preparing', 'submitting', 'submitted', 'failed', 'cancelled'"


def upgrade() -> None:
    op.add_column("fal_submissions", sa.Column("waiting_since", postgresql.TIMESTAMP(True)))
    op.add_column("fal_submissions", sa.Column("ahead", sa.Integer()))
    op.add_column("fal_submissions", sa.Column("request", sa.LargeBinary()))
    op.drop_constraint(CHECK, "fal_submissions", type_="check")
    op.create_check_constraint(CHECK, "fal_submissions", f"state IN ({STATES}, 'waiting')")
    op.execute(f"GRANT UPDATE (waiting_since, ahead, request) ON fal_submissions TO {TRAINER}")


def downgrade() -> None:
    op.execute(f"REVOKE UPDATE (waiting_since, ahead, request) ON fal_submissions FROM {TRAINER}")
    op.execute("DELETE FROM fal_submissions WHERE state = 'waiting'")
    op.drop_constraint(CHECK, "fal_submissions", type_="check")
    op.create_check_constraint(CHECK, "fal_submissions", f"state IN ({STATES})")
    op.drop_column("fal_submissions", "request")
    op.drop_column("fal_submissions", "ahead")
    op.drop_column("fal_submissions", "waiting_since")
