"""Packs: a generation may belong to a pack order (one charge for the whole pack).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

A pack is N generations made in one press and paid by one ledger entry
(`charge:pack:<order id>`); each generation keeps the order's id so its failed or withheld
pictures are refunded from that charge, per picture. Written once at insert by the bot
(which already owns inserts into `generations`), so no UPDATE grant is needed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("generations", sa.Column("pack_order_id", sa.Uuid(), nullable=True))
    op.create_index(
        "ix_generations_pack_order_id",
        "generations",
        ["pack_order_id"],
        postgresql_where=sa.text("pack_order_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_generations_pack_order_id", table_name="generations")
    op.drop_column("generations", "pack_order_id")
