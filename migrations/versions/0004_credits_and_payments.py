"""Credits: an append-only ledger, Telegram Stars payments and promo codes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

* `credit_entries` is the only record of a user's credits. Each entry carries the user's
  running `seq` and `balance_after`; `UNIQUE (user_id, seq)` and `CHECK (balance_after >= 0)`
  make PostgreSQL itself refuse a second writer racing on the same balance and any entry
  that would take it below zero. `idempotency_key` is unique, so a redelivered event, a
  repeated `successful_payment` or a retried refund posts nothing twice. No role may UPDATE
  or DELETE an entry. The bot posts purchases, refunds, grants and promos; the trainer
  posts charges in the same transaction that reserves the FAL submission.
* `star_payments`: one row per Telegram Stars charge (`telegram_payment_charge_id`), the
  package bought and its refund state.
* `promo_codes` / `promo_redemptions`: an admin's code with an amount, an expiry and a use
  limit; one redemption per user (primary key), `uses <= max_uses` checked by the database.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOT = "aisha_bot"
TRAINER = "aisha_trainer"
STATUS = "aisha_status"
ROLES = ", ".join((BOT, TRAINER, STATUS))
KINDS = (
    "trial",
    "purchase",
    "training_charge",
    "generation_charge",
    "refund",
    "admin_grant",
    "promo",
    "payment_refund",
)
TZ = sa.DateTime(timezone=True)
NOW = sa.text("now()")


def upgrade() -> None:
    kind = postgresql.ENUM(*KINDS, name="credit_kind", create_type=False)
    postgresql.ENUM(*KINDS, name="credit_kind").create(op.get_bind())
    op.create_table(
        "credit_entries",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),  # bigserial
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("kind", kind, nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("balance_after", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("actor_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TZ, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_credit_entries"),
        sa.UniqueConstraint("user_id", "seq", name="uq_credit_entries_user_id_seq"),
        sa.UniqueConstraint("idempotency_key", name="uq_credit_entries_idempotency_key"),
        sa.CheckConstraint("amount <> 0", name="ck_credit_entries_amount"),
        sa.CheckConstraint("balance_after >= 0", name="ck_credit_entries_balance_after"),
        sa.CheckConstraint("seq >= 1", name="ck_credit_entries_seq"),
    )
    op.create_table(
        "star_payments",
        sa.Column("telegram_payment_charge_id", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("package_id", sa.Text(), nullable=False),
        sa.Column("stars", sa.Integer(), nullable=False),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("invoice_payload", sa.Text(), nullable=False),
        sa.Column("provider_payment_charge_id", sa.Text(), nullable=True),
        sa.Column("paid_at", TZ, server_default=NOW, nullable=False),
        sa.Column("refund_requested_at", TZ, nullable=True),
        sa.Column("refunded_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("telegram_payment_charge_id", name="pk_star_payments"),
        sa.CheckConstraint("stars > 0", name="ck_star_payments_stars"),
        sa.CheckConstraint("credits > 0", name="ck_star_payments_credits"),
    )
    op.create_index("ix_star_payments_user_id", "star_payments", ["user_id"])
    op.create_table(
        "promo_codes",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("credits", sa.Integer(), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("uses", sa.Integer(), server_default="0", nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("created_by", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TZ, server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_promo_codes"),
        sa.CheckConstraint("credits > 0", name="ck_promo_codes_credits"),
        sa.CheckConstraint("max_uses > 0", name="ck_promo_codes_max_uses"),
        sa.CheckConstraint("uses >= 0 AND uses <= max_uses", name="ck_promo_codes_uses"),
    )
    op.create_table(
        "promo_redemptions",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("redeemed_at", TZ, server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["code"],
            ["promo_codes.code"],
            name="fk_promo_redemptions_code_promo_codes",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code", "user_id", name="pk_promo_redemptions"),
    )
    for table in ("credit_entries", "star_payments", "promo_codes", "promo_redemptions"):
        op.execute(f"GRANT SELECT ON {table} TO {ROLES}")
    op.execute(f"GRANT INSERT ON credit_entries TO {BOT}, {TRAINER}")
    op.execute(f"GRANT USAGE ON SEQUENCE credit_entries_id_seq TO {BOT}, {TRAINER}")
    op.execute(f"GRANT INSERT ON star_payments, promo_codes, promo_redemptions TO {BOT}")
    op.execute(f"GRANT UPDATE (refund_requested_at, refunded_at) ON star_payments TO {BOT}")
    op.execute(f"GRANT UPDATE (uses) ON promo_codes TO {BOT}")


def downgrade() -> None:
    op.drop_table("promo_redemptions")
    op.drop_table("promo_codes")
    op.drop_index("ix_star_payments_user_id", table_name="star_payments")
    op.drop_table("star_payments")
    op.drop_table("credit_entries")
    postgresql.ENUM(name="credit_kind").drop(op.get_bind())
