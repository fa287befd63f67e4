"""Generation threads and progress messages, share links, orphan-webhook keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

* `generations.parent_id` links "again" / "more like this" to the generation they repeat;
  `progress_chat_id` / `progress_message_id` hold the one status message the bot edits.
* `share_links`: revocable tokens for `/start share_<token>` deep links to one image.
* `fal_webhooks.idempotency_key`: the key our webhook URL carries, so a job FAL accepted
  just before the trainer crashed can be adopted instead of submitted (and paid) again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOT = "aisha_bot"
TRAINER = "aisha_trainer"
STATUS = "aisha_status"
ROLES = ", ".join((BOT, TRAINER, STATUS))


def upgrade() -> None:
    op.add_column("generations", sa.Column("parent_id", sa.Uuid(), nullable=True))
    op.add_column("generations", sa.Column("progress_chat_id", sa.BigInteger(), nullable=True))
    op.add_column("generations", sa.Column("progress_message_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        "fk_generations_parent_id_generations",
        "generations",
        "generations",
        ["parent_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.execute(f"GRANT UPDATE (progress_chat_id, progress_message_id) ON generations TO {BOT}")

    op.create_table(
        "share_links",
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("image_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["generated_images.id"],
            name="fk_share_links_image_id_generated_images",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token", name="pk_share_links"),
    )
    op.create_index("ix_share_links_image_id", "share_links", ["image_id"])
    op.execute(f"GRANT SELECT ON share_links TO {ROLES}")
    op.execute(f"GRANT INSERT, DELETE ON share_links TO {BOT}")
    op.execute(f"GRANT UPDATE (revoked_at) ON share_links TO {BOT}")

    op.add_column("fal_webhooks", sa.Column("idempotency_key", sa.Text(), nullable=True))
    op.create_index(
        "ix_fal_webhooks_idempotency_key",
        "fal_webhooks",
        ["idempotency_key"],
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_fal_webhooks_idempotency_key", table_name="fal_webhooks")
    op.drop_column("fal_webhooks", "idempotency_key")
    op.drop_table("share_links")
    op.drop_constraint("fk_generations_parent_id_generations", "generations", type_="foreignkey")
    op.drop_column("generations", "progress_message_id")
    op.drop_column("generations", "progress_chat_id")
    op.drop_column("generations", "parent_id")
