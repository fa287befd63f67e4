"""Ledger state `preparing`, and the trainer may delete a ledger row FAL refused.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27

* `fal_submissions.state` gains `preparing`: the row exists while the archive is built and
  uploaded, before FAL is called. A process that dies then leaves a row the redelivered
  request may simply take over; only a row in `submitting` (FAL may have been called)
  needs the orphan reconciliation. Before, a crash during the upload looked like an
  orphan and left the user waiting the whole reconcile window.
* `GRANT DELETE ON fal_submissions TO aisha_trainer`: a submission that FAL refused
  (5xx/429 answered, so no job exists) is removed so the next delivery may submit again;
  0001 granted no DELETE, so that removal failed (found by the fault suite).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRAINER = "aisha_trainer"
CHECK = "ck_fal_submissions_state"


def upgrade() -> None:
    op.drop_constraint(CHECK, "fal_submissions", type_="check")
    op.create_check_constraint(
        CHECK,
        "fal_submissions",
        "state IN ('preparing', 'submitting', 'submitted', 'failed', 'cancelled')",
    )
    op.execute(f"GRANT DELETE ON fal_submissions TO {TRAINER}")


def downgrade() -> None:
    op.execute(f"REVOKE DELETE ON fal_submissions FROM {TRAINER}")
    op.execute("DELETE FROM fal_submissions WHERE state = 'preparing'")
    op.drop_constraint(CHECK, "fal_submissions", type_="check")
    op.create_check_constraint(
        CHECK,
        "fal_submissions",
        "state IN ('submitting', 'submitted', 'failed', 'cancelled')",
    )
