"""Our own copy of each trained LoRA, and the re-upload FAL can fetch it from.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

FAL deletes its files at the lifetime they were given (docs: "Files and retention"), so the
status service copies every trained LoRA and its config file into the Object Store as soon
as the training ends, and generation re-uploads our copy when FAL's is gone.

* `avatars.lora_object_key` (status): the Object Store name of our copy of the LoRA; its
  config file sits beside it (`services.kit.loras`).
* `avatars.lora_upload_url`, `avatars.lora_upload_expires_at` (trainer): our copy as last
  re-uploaded to FAL's storage and when that upload expires, so the ~100 MB file is not
  uploaded again for every generation (a column, not a memory cache: it outlives a restart
  and every trainer replica shares it).
* `ix_avatars_files_due`: the status service's scan for finished trainings whose files or
  logs are still to be kept.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRAINER = "aisha_trainer"
STATUS = "aisha_status"
DUE = (
    "training_finished_at IS NOT NULL AND fal_status IN ('COMPLETED', 'ERROR') "
    "AND (training_logs IS NULL OR (fal_status = 'COMPLETED' AND lora_object_key IS NULL))"
)


def upgrade() -> None:
    op.add_column("avatars", sa.Column("lora_object_key", sa.Text(), nullable=True))
    op.add_column("avatars", sa.Column("lora_upload_url", sa.Text(), nullable=True))
    op.add_column(
        "avatars",
        sa.Column("lora_upload_expires_at", sa.TIMESTAMP(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_avatars_files_due", "avatars", ["next_poll_at"], postgresql_where=sa.text(DUE)
    )
    op.execute(f"GRANT UPDATE (lora_object_key) ON avatars TO {STATUS}")
    op.execute(f"GRANT UPDATE (lora_upload_url, lora_upload_expires_at) ON avatars TO {TRAINER}")


def downgrade() -> None:
    op.execute(f"REVOKE UPDATE (lora_upload_url, lora_upload_expires_at) ON avatars FROM {TRAINER}")
    op.execute(f"REVOKE UPDATE (lora_object_key) ON avatars FROM {STATUS}")
    op.drop_index("ix_avatars_files_due", table_name="avatars")
    op.drop_column("avatars", "lora_upload_expires_at")
    op.drop_column("avatars", "lora_upload_url")
    op.drop_column("avatars", "lora_object_key")
