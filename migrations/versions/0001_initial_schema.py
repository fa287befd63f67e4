"""Initial schema: enums, tables, indexes, service roles and column-level grants.

Revision ID: 0001
Revises:
Create Date: 2025-11-26

Frozen history: this file spells everything out and imports nothing from the application.
The integration tests check that the result matches `services.kit.schema` (drift check and a
privilege-by-privilege test of OWNERS / INSERTERS / DELETERS).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BOT = "aisha_bot"
TRAINER = "aisha_trainer"
STATUS = "aisha_status"
ROLES = (BOT, TRAINER, STATUS)

ENUMS = {
    "avatar_training_type": ("portrait", "style"),
    "fal_finetune_type": ("full", "lora"),
    "fal_priority": ("speed", "quality", "high_res_only"),
    "avatar_status": (
        "draft",
        "uploading",
        "ready",
        "training",
        "completed",
        "error",
        "cancelled",
    ),
    "avatar_gender": ("male", "female", "other"),
    "generation_status": ("pending", "submitted", "completed", "failed", "cancelled"),
    "photo_status": ("accepted", "rejected"),
}

TABLES = (
    "users",
    "avatars",
    "photos",
    "fal_submissions",
    "generations",
    "generated_images",
    "outbox",
    "processed_events",
    "fal_webhooks",
)

# table -> role -> columns that role may UPDATE (one writer per column).
UPDATES: dict[str, dict[str, tuple[str, ...]]] = {
    "users": {
        BOT: (
            "username",
            "first_name",
            "language",
            "is_active",
            "is_admin",
            "main_avatar_id",
            "last_seen_at",
        ),
    },
    "avatars": {
        BOT: (
            "name",
            "gender",
            "status",
            "training_type",
            "fal_priority",
            "trigger_word",
            "training_attempt",
            "photo_count",
            "generation_count",
            "progress_chat_id",
            "progress_message_id",
            "keep_photos",
            "updated_at",
        ),
        TRAINER: (
            "fal_request_id",
            "fal_endpoint",
            "finetune_type",
            "finetune_comment",
            "learning_rate",
            "steps",
            "lora_rank",
            "trigger_phrase",
            "multiresolution_training",
            "subject_crop",
            "create_masks",
            "captioning",
            "webhook_url",
            "images_data_url",
            "submitted_attempt",
            "submitted_at",
            "cost_usd",
        ),
        STATUS: (
            "fal_status",
            "training_progress",
            "queue_position",
            "training_logs",
            "training_error",
            "last_status_check",
            "fal_response_data",
            "diffusers_lora_file_url",
            "config_file_url",
            "training_started_at",
            "training_finished_at",
            "tracked_attempt",
            "next_poll_at",
            "poll_count",
        ),
    },
    "photos": {
        BOT: (
            "object_name",
            "sha256",
            "size_bytes",
            "width",
            "height",
            "format",
            "status",
            "error",
            "telegram_file_id",
            "telegram_file_unique_id",
        ),
    },
    "fal_submissions": {
        TRAINER: ("endpoint", "state", "request_id", "error", "submitted_at", "updated_at"),
    },
    "generations": {
        BOT: (
            "prompt",
            "user_prompt",
            "style_id",
            "aspect_ratio",
            "num_images",
            "seed",
            "lora_scale",
            "status",
        ),
        TRAINER: ("fal_request_id", "fal_endpoint", "submitted_at", "cost_usd"),
        STATUS: (
            "fal_status",
            "fal_response_data",
            "error",
            "finished_at",
            "last_status_check",
            "next_poll_at",
            "poll_count",
        ),
    },
    "generated_images": {
        BOT: ("telegram_file_id", "is_favorite"),
    },
    "outbox": {role: ("published_at", "attempts") for role in ROLES},
    "fal_webhooks": {
        STATUS: ("processed_at",),
    },
}

INSERTS: dict[str, tuple[str, ...]] = {
    "users": (BOT,),
    "avatars": (BOT,),
    "photos": (BOT,),
    "fal_submissions": (TRAINER,),
    "generations": (BOT,),
    "generated_images": (STATUS,),
    "outbox": ROLES,
    "processed_events": ROLES,
    "fal_webhooks": (STATUS,),
}

DELETES: dict[str, tuple[str, ...]] = {
    "users": (BOT,),
    "avatars": (BOT,),
    "photos": (BOT,),
    "generations": (BOT,),
    "generated_images": (BOT,),
    "outbox": ROLES,
    "processed_events": ROLES,
    "fal_webhooks": (STATUS,),
}

SEQUENCES: dict[str, tuple[str, ...]] = {
    "fal_webhooks_id_seq": (STATUS,),
}


def _enum(name: str) -> postgresql.ENUM:
    return postgresql.ENUM(name=name, create_type=False)


def _tz() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _uuid_pk() -> sa.Column:
    return sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False)


def _created_at() -> sa.Column:
    return sa.Column("created_at", _tz(), server_default=sa.text("now()"), nullable=False)


def upgrade() -> None:
    # Roles are cluster-wide: create them only if absent (another database may have them).
    for role in ROLES:
        op.execute(
            f"""
            DO $$
            BEGIN
                IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '{role}') THEN
                    CREATE ROLE {role} NOLOGIN;
                END IF;
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created concurrently by a migration of another database
            END
            $$
            """
        )

    for name, labels in ENUMS.items():
        quoted = ", ".join(f"'{label}'" for label in labels)
        op.execute(f"CREATE TYPE {name} AS ENUM ({quoted})")

    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("username", sa.Text(), nullable=True),
        sa.Column("first_name", sa.Text(), server_default="", nullable=False),
        sa.Column("language", sa.Text(), server_default="en", nullable=False),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("main_avatar_id", sa.Uuid(), nullable=True),  # FK added after avatars
        _created_at(),
        sa.Column("last_seen_at", _tz(), nullable=True),
        sa.CheckConstraint("language IN ('ru', 'en')", name="ck_users_language"),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
    )

    op.create_table(
        "avatars",
        # bot: identity and the user's choices
        _uuid_pk(),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("gender", _enum("avatar_gender"), nullable=False),
        sa.Column("status", _enum("avatar_status"), server_default="draft", nullable=False),
        sa.Column(
            "training_type",
            _enum("avatar_training_type"),
            server_default="portrait",
            nullable=False,
        ),
        sa.Column("fal_priority", _enum("fal_priority"), server_default="quality", nullable=False),
        sa.Column("trigger_word", sa.Text(), nullable=False),
        sa.Column("training_attempt", sa.Integer(), server_default="0", nullable=False),
        sa.Column("photo_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("generation_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("progress_chat_id", sa.BigInteger(), nullable=True),
        sa.Column("progress_message_id", sa.BigInteger(), nullable=True),
        sa.Column("keep_photos", sa.Boolean(), server_default=sa.false(), nullable=False),
        _created_at(),
        sa.Column("updated_at", _tz(), server_default=sa.text("now()"), nullable=False),
        # trainer: what was sent to FAL
        sa.Column("fal_request_id", sa.Text(), nullable=True),
        sa.Column("fal_endpoint", sa.Text(), nullable=True),
        sa.Column("finetune_type", _enum("fal_finetune_type"), nullable=True),
        sa.Column("finetune_comment", sa.Text(), nullable=True),
        sa.Column("learning_rate", sa.Double(), nullable=True),
        sa.Column("steps", sa.Integer(), nullable=True),
        sa.Column("lora_rank", sa.Integer(), nullable=True),
        sa.Column("trigger_phrase", sa.Text(), nullable=True),
        sa.Column("multiresolution_training", sa.Boolean(), nullable=True),
        sa.Column("subject_crop", sa.Boolean(), nullable=True),
        sa.Column("create_masks", sa.Boolean(), nullable=True),
        sa.Column("captioning", sa.Boolean(), nullable=True),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("images_data_url", sa.Text(), nullable=True),
        sa.Column("submitted_attempt", sa.Integer(), nullable=True),
        sa.Column("submitted_at", _tz(), nullable=True),
        sa.Column("cost_usd", sa.Numeric(10, 4), nullable=True),
        # status: what FAL said
        sa.Column("fal_status", sa.Text(), nullable=True),
        sa.Column("training_progress", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("queue_position", sa.Integer(), nullable=True),
        sa.Column("training_logs", sa.Text(), nullable=True),
        sa.Column("training_error", sa.Text(), nullable=True),
        sa.Column("last_status_check", _tz(), nullable=True),
        sa.Column("fal_response_data", postgresql.JSONB(), nullable=True),
        sa.Column("diffusers_lora_file_url", sa.Text(), nullable=True),
        sa.Column("config_file_url", sa.Text(), nullable=True),
        sa.Column("training_started_at", _tz(), nullable=True),
        sa.Column("training_finished_at", _tz(), nullable=True),
        sa.Column("tracked_attempt", sa.Integer(), nullable=True),
        sa.Column("next_poll_at", _tz(), nullable=True),
        sa.Column("poll_count", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("char_length(name) BETWEEN 1 AND 64", name="ck_avatars_name_length"),
        sa.CheckConstraint(
            "training_progress BETWEEN 0 AND 100", name="ck_avatars_training_progress_range"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_avatars_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_avatars"),
    )
    op.create_index("ix_avatars_fal_request_id", "avatars", ["fal_request_id"])
    op.create_index("ix_avatars_training_type", "avatars", ["training_type"])
    op.create_index("ix_avatars_user_id", "avatars", ["user_id", "created_at"])
    op.create_index(
        "ix_avatars_poll_due",
        "avatars",
        ["next_poll_at"],
        postgresql_where=sa.text("fal_request_id IS NOT NULL AND training_finished_at IS NULL"),
    )
    op.create_foreign_key(
        "fk_users_main_avatar_id_avatars",
        "users",
        "avatars",
        ["main_avatar_id"],
        ["id"],
        ondelete="SET NULL",
    )

    op.create_table(
        "photos",
        _uuid_pk(),
        sa.Column("avatar_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("object_name", sa.Text(), nullable=False),
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("format", sa.Text(), nullable=True),
        sa.Column("status", _enum("photo_status"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("telegram_file_id", sa.Text(), nullable=True),
        sa.Column("telegram_file_unique_id", sa.Text(), nullable=True),
        _created_at(),
        sa.ForeignKeyConstraint(
            ["avatar_id"], ["avatars.id"], name="fk_photos_avatar_id_avatars", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_photos"),
        sa.UniqueConstraint("avatar_id", "sha256", name="uq_photos_avatar_id_sha256"),
    )
    op.create_index("ix_photos_avatar_id", "photos", ["avatar_id"])

    op.create_table(
        "fal_submissions",
        _uuid_pk(),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("subject_id", sa.Uuid(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("request_id", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _created_at(),
        sa.Column("submitted_at", _tz(), nullable=True),
        sa.Column("updated_at", _tz(), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('training', 'generation')", name="ck_fal_submissions_kind"),
        sa.CheckConstraint(
            "state IN ('submitting', 'submitted', 'failed', 'cancelled')",
            name="ck_fal_submissions_state",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_fal_submissions"),
        sa.UniqueConstraint("idempotency_key", name="uq_fal_submissions_idempotency_key"),
        sa.UniqueConstraint("request_id", name="uq_fal_submissions_request_id"),
    )

    op.create_table(
        "generations",
        # bot
        _uuid_pk(),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("avatar_id", sa.Uuid(), nullable=True),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("user_prompt", sa.Text(), nullable=True),
        sa.Column("style_id", sa.Text(), nullable=True),
        sa.Column("aspect_ratio", sa.Text(), nullable=False),
        sa.Column("num_images", sa.SmallInteger(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("lora_scale", sa.REAL(), nullable=True),
        sa.Column("status", _enum("generation_status"), server_default="pending", nullable=False),
        _created_at(),
        # trainer
        sa.Column("fal_request_id", sa.Text(), nullable=True),
        sa.Column("fal_endpoint", sa.Text(), nullable=True),
        sa.Column("submitted_at", _tz(), nullable=True),
        sa.Column("cost_usd", sa.Numeric(10, 4), nullable=True),
        # status
        sa.Column("fal_status", sa.Text(), nullable=True),
        sa.Column("fal_response_data", postgresql.JSONB(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", _tz(), nullable=True),
        sa.Column("last_status_check", _tz(), nullable=True),
        sa.Column("next_poll_at", _tz(), nullable=True),
        sa.Column("poll_count", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("num_images BETWEEN 1 AND 4", name="ck_generations_num_images_range"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_generations_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["avatar_id"],
            ["avatars.id"],
            name="fk_generations_avatar_id_avatars",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_generations"),
    )
    op.create_index("ix_generations_fal_request_id", "generations", ["fal_request_id"])
    op.create_index("ix_generations_user_id", "generations", ["user_id", "created_at"])
    op.create_index(
        "ix_generations_poll_due",
        "generations",
        ["next_poll_at"],
        postgresql_where=sa.text("fal_request_id IS NOT NULL AND finished_at IS NULL"),
    )

    op.create_table(
        "generated_images",
        _uuid_pk(),
        sa.Column("generation_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.SmallInteger(), nullable=False),
        sa.Column("object_name", sa.Text(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("content_type", sa.Text(), nullable=True),
        sa.Column("nsfw", sa.Boolean(), server_default=sa.false(), nullable=False),
        _created_at(),
        sa.Column("telegram_file_id", sa.Text(), nullable=True),
        sa.Column("is_favorite", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name="fk_generated_images_generation_id_generations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_generated_images"),
        sa.UniqueConstraint(
            "generation_id", "position", name="uq_generated_images_generation_id_position"
        ),
    )
    op.create_index("ix_generated_images_user_id", "generated_images", ["user_id", "created_at"])

    op.create_table(
        "outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("producer", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("headers", postgresql.JSONB(), nullable=True),
        _created_at(),
        sa.Column("published_at", _tz(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint("producer IN ('bot', 'trainer', 'status')", name="ck_outbox_producer"),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["created_at"],
        postgresql_where=sa.text("published_at IS NULL"),
    )

    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.Text(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("processed_at", _tz(), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name="pk_processed_events"),
    )
    op.create_index("ix_processed_events_processed_at", "processed_events", ["processed_at"])

    op.create_table(
        "fal_webhooks",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),  # bigserial
        sa.Column("request_id", sa.Text(), nullable=False),
        sa.Column("received_at", _tz(), server_default=sa.text("now()"), nullable=False),
        sa.Column("fal_timestamp", sa.BigInteger(), nullable=True),
        sa.Column("body", postgresql.JSONB(), nullable=False),
        sa.Column("processed_at", _tz(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_fal_webhooks"),
    )
    op.create_index("ix_fal_webhooks_request_id", "fal_webhooks", ["request_id"])
    op.create_index(
        "ix_fal_webhooks_unprocessed",
        "fal_webhooks",
        ["received_at"],
        postgresql_where=sa.text("processed_at IS NULL"),
    )

    # ---- privileges ------------------------------------------------------------------------
    roles = ", ".join(ROLES)
    op.execute(f"GRANT USAGE ON SCHEMA public TO {roles}")
    # Services may read the schema revision (e.g. to refuse to start on an old schema).
    op.execute(f"GRANT SELECT ON alembic_version TO {roles}")
    for table in TABLES:
        op.execute(f"GRANT SELECT ON {table} TO {roles}")
        if table in INSERTS:
            op.execute(f"GRANT INSERT ON {table} TO {', '.join(INSERTS[table])}")
        if table in DELETES:
            op.execute(f"GRANT DELETE ON {table} TO {', '.join(DELETES[table])}")
        for role, columns in UPDATES.get(table, {}).items():
            op.execute(f"GRANT UPDATE ({', '.join(columns)}) ON {table} TO {role}")
    for sequence, users in SEQUENCES.items():
        op.execute(f"GRANT USAGE ON SEQUENCE {sequence} TO {', '.join(users)}")


def downgrade() -> None:
    roles = ", ".join(ROLES)
    # Dropping the tables drops their grants; what is left is schema- and table-level access
    # outside them. The roles themselves stay: they are cluster-wide and other databases on the
    # same server may still use them (drop them by hand with DROP ROLE when none does).
    op.execute(f"REVOKE ALL ON alembic_version FROM {roles}")
    op.drop_constraint("fk_users_main_avatar_id_avatars", "users", type_="foreignkey")
    op.drop_table("fal_webhooks")
    op.drop_table("processed_events")
    op.drop_table("outbox")
    op.drop_table("generated_images")
    op.drop_table("generations")
    op.drop_table("fal_submissions")
    op.drop_table("photos")
    op.drop_table("avatars")
    op.drop_table("users")
    for name in reversed(ENUMS):
        op.execute(f"DROP TYPE {name}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {roles}")
