"""The database the code expects, in one place: tables, enums, indexes and who may write what.

`metadata` is the single description of the schema (SQLAlchemy Core). Alembic's drift check
(`services.kit.migrate.check`) compares it with a migrated database, so a migration that forgets
something, or a change here without a migration, fails CI.

`OWNERS`, `INSERTERS` and `DELETERS` describe the privileges the migrations grant to the three
service roles: one writer per column. The integration tests check them against a live database
by actually trying every UPDATE/INSERT/DELETE as every role. Migrations do not import this module
(a migration is frozen history); they spell their GRANTs out and the tests keep both in step.
"""

from __future__ import annotations

from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

# --------------------------------------------------------------------------------------------
# Roles
# --------------------------------------------------------------------------------------------

BOT: Final = "aisha_bot"
TRAINER: Final = "aisha_trainer"
STATUS: Final = "aisha_status"
ROLES: Final[tuple[str, str, str]] = (BOT, TRAINER, STATUS)

NAMING_CONVENTION: Final[dict[str, str]] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# --------------------------------------------------------------------------------------------
# Enum types (PostgreSQL CREATE TYPE ... AS ENUM)
# --------------------------------------------------------------------------------------------

AVATAR_TRAINING_TYPE_LABELS: Final = ("portrait", "style")
FAL_FINETUNE_TYPE_LABELS: Final = ("full", "lora")
FAL_PRIORITY_LABELS: Final = ("speed", "quality", "high_res_only")
AVATAR_STATUS_LABELS: Final = (
    "draft",
    "uploading",
    "ready",
    "training",
    "completed",
    "error",
    "cancelled",
)
AVATAR_GENDER_LABELS: Final = ("male", "female", "other")
GENERATION_STATUS_LABELS: Final = ("pending", "submitted", "completed", "failed", "cancelled")
PHOTO_STATUS_LABELS: Final = ("accepted", "rejected")
CREDIT_KIND_LABELS: Final = (
    "trial",
    "purchase",
    "training_charge",
    "generation_charge",
    "refund",
    "admin_grant",
    "promo",
    "payment_refund",
)


def _enum(name: str, labels: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*labels, name=name, metadata=metadata, native_enum=True)


avatar_training_type = _enum("avatar_training_type", AVATAR_TRAINING_TYPE_LABELS)
fal_finetune_type = _enum("fal_finetune_type", FAL_FINETUNE_TYPE_LABELS)
fal_priority = _enum("fal_priority", FAL_PRIORITY_LABELS)
avatar_status = _enum("avatar_status", AVATAR_STATUS_LABELS)
avatar_gender = _enum("avatar_gender", AVATAR_GENDER_LABELS)
generation_status = _enum("generation_status", GENERATION_STATUS_LABELS)
photo_status = _enum("photo_status", PHOTO_STATUS_LABELS)
credit_kind = _enum("credit_kind", CREDIT_KIND_LABELS)

#: enum type name -> labels in declaration order (what `pg_enum` must hold).
ENUMS: Final[dict[str, tuple[str, ...]]] = {
    "avatar_training_type": AVATAR_TRAINING_TYPE_LABELS,
    "fal_finetune_type": FAL_FINETUNE_TYPE_LABELS,
    "fal_priority": FAL_PRIORITY_LABELS,
    "avatar_status": AVATAR_STATUS_LABELS,
    "avatar_gender": AVATAR_GENDER_LABELS,
    "generation_status": GENERATION_STATUS_LABELS,
    "photo_status": PHOTO_STATUS_LABELS,
    "credit_kind": CREDIT_KIND_LABELS,
}

# --------------------------------------------------------------------------------------------
# Column helpers
# --------------------------------------------------------------------------------------------

TZ = sa.DateTime(timezone=True)
NOW = sa.text("now()")


def _uuid_pk() -> sa.Column[Any]:
    return sa.Column("id", sa.Uuid(), primary_key=True, server_default=sa.text("gen_random_uuid()"))


def _created_at() -> sa.Column[Any]:
    return sa.Column("created_at", TZ, nullable=False, server_default=NOW)


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),  # Telegram user id
    sa.Column("username", sa.Text()),
    sa.Column("first_name", sa.Text(), nullable=False, server_default=""),
    sa.Column("language", sa.Text(), nullable=False, server_default="en"),
    sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column(
        "main_avatar_id",
        sa.Uuid(),
        sa.ForeignKey("avatars.id", ondelete="SET NULL", use_alter=True),
    ),
    _created_at(),
    sa.Column("last_seen_at", TZ),
    sa.CheckConstraint("language IN ('ru', 'en')", name="language"),
)

avatars = sa.Table(
    "avatars",
    metadata,
    # --- bot: identity and the user's choices --------------------------------------------
    _uuid_pk(),
    sa.Column(
        "user_id",
        sa.BigInteger(),
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("gender", avatar_gender),  # NULL for a style avatar (0007)
    sa.Column("status", avatar_status, nullable=False, server_default="draft"),
    sa.Column("training_type", avatar_training_type, nullable=False, server_default="portrait"),
    sa.Column("fal_priority", fal_priority, nullable=False, server_default="quality"),
    sa.Column("trigger_word", sa.Text(), nullable=False),
    sa.Column("training_attempt", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("photo_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("generation_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("progress_chat_id", sa.BigInteger()),
    sa.Column("progress_message_id", sa.BigInteger()),
    sa.Column("keep_photos", sa.Boolean(), nullable=False, server_default=sa.false()),
    _created_at(),
    sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
    # --- trainer: what was sent to FAL ----------------------------------------------------
    sa.Column("fal_request_id", sa.Text()),
    sa.Column("fal_endpoint", sa.Text()),
    sa.Column("finetune_type", fal_finetune_type),
    sa.Column("finetune_comment", sa.Text()),
    sa.Column("learning_rate", sa.Double()),
    sa.Column("steps", sa.Integer()),
    sa.Column("lora_rank", sa.Integer()),
    sa.Column("trigger_phrase", sa.Text()),
    sa.Column("multiresolution_training", sa.Boolean()),
    sa.Column("subject_crop", sa.Boolean()),
    sa.Column("create_masks", sa.Boolean()),
    sa.Column("captioning", sa.Boolean()),
    sa.Column("webhook_url", sa.Text()),
    sa.Column("images_data_url", sa.Text()),
    sa.Column("submitted_attempt", sa.Integer()),
    sa.Column("submitted_at", TZ),
    sa.Column("cost_usd", sa.Numeric(10, 4)),
    sa.Column("lora_upload_url", sa.Text()),
    sa.Column("lora_upload_expires_at", TZ),
    # --- status: what FAL said -------------------------------------------------------------
    sa.Column("fal_status", sa.Text()),
    sa.Column("training_progress", sa.SmallInteger(), nullable=False, server_default="0"),
    sa.Column("queue_position", sa.Integer()),
    sa.Column("training_logs", sa.Text()),
    sa.Column("training_error", sa.Text()),
    sa.Column("last_status_check", TZ),
    sa.Column("fal_response_data", postgresql.JSONB()),
    sa.Column("diffusers_lora_file_url", sa.Text()),
    sa.Column("config_file_url", sa.Text()),
    sa.Column("training_started_at", TZ),
    sa.Column("training_finished_at", TZ),
    sa.Column("tracked_attempt", sa.Integer()),
    sa.Column("next_poll_at", TZ),
    sa.Column("poll_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("lora_object_key", sa.Text()),
    # --- bot: the reference identity for likeness scores (0013) ---------------------------
    sa.Column("likeness_center", postgresql.ARRAY(sa.REAL())),
    sa.Column("likeness_spread", sa.REAL()),
    sa.Column("likeness_faces", sa.SmallInteger()),
    sa.CheckConstraint("char_length(name) BETWEEN 1 AND 64", name="name_length"),
    sa.CheckConstraint("training_progress BETWEEN 0 AND 100", name="training_progress_range"),
    sa.CheckConstraint("gender IS NOT NULL OR training_type = 'style'", name="gender_for_portrait"),
    sa.Index("ix_avatars_fal_request_id", "fal_request_id"),
    sa.Index("ix_avatars_training_type", "training_type"),
    sa.Index("ix_avatars_user_id", "user_id", "created_at"),
    sa.Index(
        "ix_avatars_poll_due",
        "next_poll_at",
        postgresql_where=sa.text("fal_request_id IS NOT NULL AND training_finished_at IS NULL"),
    ),
    sa.Index(
        "ix_avatars_files_due",
        "next_poll_at",
        postgresql_where=sa.text(
            "training_finished_at IS NOT NULL AND fal_status IN ('COMPLETED', 'ERROR') AND "
            "(training_logs IS NULL OR (fal_status = 'COMPLETED' AND lora_object_key IS NULL))"
        ),
    ),
)

photos = sa.Table(
    "photos",
    metadata,
    _uuid_pk(),
    sa.Column(
        "avatar_id",
        sa.Uuid(),
        sa.ForeignKey("avatars.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("user_id", sa.BigInteger(), nullable=False),
    sa.Column("object_name", sa.Text(), nullable=False),
    sa.Column("sha256", sa.Text(), nullable=False),
    sa.Column("size_bytes", sa.Integer()),
    sa.Column("width", sa.Integer()),
    sa.Column("height", sa.Integer()),
    sa.Column("format", sa.Text()),
    sa.Column("status", photo_status, nullable=False),
    sa.Column("error", sa.Text()),
    sa.Column("telegram_file_id", sa.Text()),
    sa.Column("telegram_file_unique_id", sa.Text()),
    _created_at(),
    # the photo gate's measurements (0008)
    sa.Column("face_count", sa.SmallInteger()),
    sa.Column("face_area_ratio", sa.REAL()),
    sa.Column("sharpness", sa.REAL()),
    sa.Column("brightness", sa.REAL()),
    sa.Column("phash", sa.BigInteger()),
    sa.Column("embedding", postgresql.ARRAY(sa.REAL())),
    sa.Column(
        "warnings", postgresql.ARRAY(sa.Text()), nullable=False, server_default=sa.text("'{}'")
    ),
    sa.UniqueConstraint("avatar_id", "sha256"),
    sa.Index("ix_photos_avatar_id", "avatar_id"),
)

fal_submissions = sa.Table(
    "fal_submissions",
    metadata,
    _uuid_pk(),
    sa.Column("kind", sa.Text(), nullable=False),
    sa.Column("subject_id", sa.Uuid(), nullable=False),  # avatar id or generation id
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("idempotency_key", sa.Text(), nullable=False),
    sa.Column("endpoint", sa.Text(), nullable=False),
    sa.Column("state", sa.Text(), nullable=False),
    sa.Column("request_id", sa.Text()),
    sa.Column("error", sa.Text()),
    _created_at(),
    sa.Column("submitted_at", TZ),
    sa.Column("updated_at", TZ, nullable=False, server_default=NOW),
    # A training waiting for a slot (0006): its place in our line and the request to release.
    sa.Column("waiting_since", TZ),
    sa.Column("ahead", sa.Integer()),
    sa.Column("request", sa.LargeBinary()),
    sa.CheckConstraint("kind IN ('training', 'generation')", name="kind"),
    sa.CheckConstraint(
        "state IN ('preparing', 'submitting', 'submitted', 'failed', 'cancelled', 'waiting')",
        name="state",
    ),
    sa.UniqueConstraint("idempotency_key"),
    sa.UniqueConstraint("request_id"),
)

generations = sa.Table(
    "generations",
    metadata,
    # --- bot -------------------------------------------------------------------------------
    _uuid_pk(),
    sa.Column(
        "user_id",
        sa.BigInteger(),
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("avatar_id", sa.Uuid(), sa.ForeignKey("avatars.id", ondelete="SET NULL")),
    sa.Column("prompt", sa.Text(), nullable=False),
    sa.Column("user_prompt", sa.Text()),
    sa.Column("style_id", sa.Text()),
    sa.Column("aspect_ratio", sa.Text(), nullable=False),
    sa.Column("num_images", sa.SmallInteger(), nullable=False),
    sa.Column("seed", sa.BigInteger(), nullable=False),
    sa.Column("lora_scale", sa.REAL()),
    sa.Column("status", generation_status, nullable=False, server_default="pending"),
    _created_at(),
    sa.Column("parent_id", sa.Uuid(), sa.ForeignKey("generations.id", ondelete="SET NULL")),
    sa.Column("progress_chat_id", sa.BigInteger()),
    sa.Column("progress_message_id", sa.BigInteger()),
    sa.Column("pack_order_id", sa.Uuid()),  # 0009: one charged pack of generations
    # 0010: an upscale enlarges one stored picture (both written once, on INSERT).
    sa.Column(
        "source_image_id",
        sa.Uuid(),
        sa.ForeignKey("generated_images.id", ondelete="SET NULL", use_alter=True),
    ),
    sa.Column("upscale_factor", sa.SmallInteger()),
    # 0011: a re-drawn reference photo and FAL's `strength` (both written once, on INSERT).
    sa.Column(
        "reference_id",
        sa.Uuid(),
        sa.ForeignKey("reference_photos.id", ondelete="SET NULL", use_alter=True),
    ),
    sa.Column("reference_strength", sa.REAL()),
    # 0012: an animation of that picture, the clip's seconds (written once, on INSERT).
    sa.Column("animation_seconds", sa.SmallInteger()),
    # 0013: a free re-draw of the parent's weak pictures (written once, on INSERT).
    sa.Column("likeness_retry", sa.Boolean(), nullable=False, server_default=sa.false()),
    # 0014: the test portraits of a training check (never charged, not in the gallery).
    sa.Column("training_check", sa.Boolean(), nullable=False, server_default=sa.false()),
    # --- trainer ---------------------------------------------------------------------------
    sa.Column("fal_request_id", sa.Text()),
    sa.Column("fal_endpoint", sa.Text()),
    sa.Column("submitted_at", TZ),
    sa.Column("cost_usd", sa.Numeric(10, 4)),
    # --- status ----------------------------------------------------------------------------
    sa.Column("fal_status", sa.Text()),
    sa.Column("fal_response_data", postgresql.JSONB()),
    sa.Column("error", sa.Text()),
    sa.Column("finished_at", TZ),
    sa.Column("last_status_check", TZ),
    sa.Column("next_poll_at", TZ),
    sa.Column("poll_count", sa.Integer(), nullable=False, server_default="0"),
    sa.CheckConstraint("num_images BETWEEN 1 AND 4", name="num_images_range"),
    sa.CheckConstraint(
        "upscale_factor IS NULL OR upscale_factor IN (2, 4)", name="upscale_factor_values"
    ),
    sa.CheckConstraint(
        "reference_strength IS NULL OR reference_strength BETWEEN 0.01 AND 1",
        name="reference_strength_range",
    ),
    sa.CheckConstraint(
        "animation_seconds IS NULL OR animation_seconds IN (5, 10)",
        name="animation_seconds_values",
    ),
    sa.CheckConstraint(
        "animation_seconds IS NULL OR upscale_factor IS NULL", name="one_derived_kind"
    ),
    sa.Index("ix_generations_fal_request_id", "fal_request_id"),
    sa.Index("ix_generations_source_image_id", "source_image_id"),
    sa.Index("ix_generations_reference_id", "reference_id"),
    sa.Index("ix_generations_user_id", "user_id", "created_at"),
    sa.Index(
        "ix_generations_poll_due",
        "next_poll_at",
        postgresql_where=sa.text("fal_request_id IS NOT NULL AND finished_at IS NULL"),
    ),
    sa.Index(
        "ix_generations_pack_order_id",
        "pack_order_id",
        postgresql_where=sa.text("pack_order_id IS NOT NULL"),
    ),
    sa.Index(
        "ix_generations_training_check",
        "avatar_id",
        postgresql_where=sa.text("training_check"),
    ),
    sa.Index(
        "uq_generations_likeness_retry",
        "parent_id",
        unique=True,
        postgresql_where=sa.text("likeness_retry"),
    ),
)

generated_images = sa.Table(
    "generated_images",
    metadata,
    # --- status (inserts the stored results) ------------------------------------------------
    _uuid_pk(),
    sa.Column(
        "generation_id",
        sa.Uuid(),
        sa.ForeignKey("generations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("user_id", sa.BigInteger(), nullable=False),
    sa.Column("position", sa.SmallInteger(), nullable=False),
    sa.Column("object_name", sa.Text(), nullable=False),
    sa.Column("width", sa.Integer()),
    sa.Column("height", sa.Integer()),
    sa.Column("content_type", sa.Text()),
    sa.Column("nsfw", sa.Boolean(), nullable=False, server_default=sa.false()),
    _created_at(),
    # --- bot -------------------------------------------------------------------------------
    sa.Column("telegram_file_id", sa.Text()),
    sa.Column("is_favorite", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("likeness", sa.REAL()),  # 0013: 0-100, NULL = not scored / not applicable
    sa.Column("likeness_distance", sa.REAL()),
    sa.CheckConstraint("likeness IS NULL OR likeness BETWEEN 0 AND 100", name="likeness_range"),
    sa.UniqueConstraint("generation_id", "position"),
    sa.Index("ix_generated_images_user_id", "user_id", "created_at"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),  # the event_id, also the Nats-Msg-Id
    sa.Column("producer", sa.Text(), nullable=False),
    sa.Column("subject", sa.Text(), nullable=False),
    sa.Column("payload", sa.LargeBinary(), nullable=False),
    sa.Column("headers", postgresql.JSONB()),
    _created_at(),
    sa.Column("published_at", TZ),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.CheckConstraint("producer IN ('bot', 'trainer', 'status')", name="producer"),
    sa.Index(
        "ix_outbox_unpublished",
        "created_at",
        postgresql_where=sa.text("published_at IS NULL"),
    ),
)

processed_events = sa.Table(
    "processed_events",
    metadata,
    sa.Column("consumer", sa.Text(), primary_key=True),
    sa.Column("event_id", sa.Uuid(), primary_key=True),
    sa.Column("processed_at", TZ, nullable=False, server_default=NOW),
    sa.Index("ix_processed_events_processed_at", "processed_at"),
)

fal_webhooks = sa.Table(
    "fal_webhooks",
    metadata,
    sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),  # bigserial
    sa.Column("request_id", sa.Text(), nullable=False),
    sa.Column("received_at", TZ, nullable=False, server_default=NOW),
    sa.Column("fal_timestamp", sa.BigInteger()),
    sa.Column("body", postgresql.JSONB(), nullable=False),
    sa.Column("processed_at", TZ),
    sa.Column("idempotency_key", sa.Text()),
    sa.Index("ix_fal_webhooks_request_id", "request_id"),
    sa.Index(
        "ix_fal_webhooks_idempotency_key",
        "idempotency_key",
        postgresql_where=sa.text("idempotency_key IS NOT NULL"),
    ),
    sa.Index(
        "ix_fal_webhooks_unprocessed",
        "received_at",
        postgresql_where=sa.text("processed_at IS NULL"),
    ),
)

# --- reference photos (0011): the user's own picture, re-drawn with their avatar ------------

reference_photos = sa.Table(
    "reference_photos",
    metadata,
    # --- bot: every column written once on INSERT; deleted by /delete_me and retention --
    _uuid_pk(),
    sa.Column(
        "user_id", sa.BigInteger(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column(
        "avatar_id", sa.Uuid(), sa.ForeignKey("avatars.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("object_name", sa.Text(), nullable=False, unique=True),
    sa.Column("sha256", sa.Text(), nullable=False),
    sa.Column("size_bytes", sa.Integer(), nullable=False),
    sa.Column("width", sa.Integer(), nullable=False),
    sa.Column("height", sa.Integer(), nullable=False),
    _created_at(),
    sa.Index("ix_reference_photos_user_id", "user_id"),
    sa.Index("ix_reference_photos_created_at", "created_at"),
)

# --- bot (0014): a finished portrait training's likeness check and the user's decision ------

training_checks = sa.Table(
    "training_checks",
    metadata,
    sa.Column(
        "avatar_id",
        sa.Uuid(),
        sa.ForeignKey("avatars.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("attempt", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("user_id", sa.BigInteger(), nullable=False),
    sa.Column("generation_id", sa.Uuid(), sa.ForeignKey("generations.id", ondelete="SET NULL")),
    sa.Column("paid_attempt", sa.Integer(), nullable=False),
    sa.Column("redo", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("state", sa.Text(), nullable=False),
    sa.Column("reason", sa.Text()),
    sa.Column("scores", postgresql.ARRAY(sa.REAL())),
    sa.Column("score", sa.REAL()),
    sa.Column("decision", sa.Text()),
    sa.Column("decided_at", TZ),
    sa.Column("left_out", sa.SmallInteger()),
    _created_at(),
    sa.Column("checked_at", TZ),
    sa.CheckConstraint("state IN ('checking', 'passed', 'poor', 'skipped')", name="state"),
    sa.CheckConstraint(
        "decision IS NULL OR (state = 'poor' AND decision IN ('redo', 'refund', 'keep'))",
        name="decision",
    ),
    sa.CheckConstraint("score IS NULL OR score BETWEEN 0 AND 100", name="score_range"),
    sa.Index("ix_training_checks_created_at", "created_at"),
    sa.Index("ix_training_checks_generation_id", "generation_id", unique=True),
)

share_links = sa.Table(
    "share_links",
    metadata,
    # --- bot: a revocable deep link (`/start share_<token>`) to one generated image ---------
    sa.Column("token", sa.Text(), primary_key=True),
    sa.Column(
        "image_id",
        sa.Uuid(),
        sa.ForeignKey("generated_images.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("user_id", sa.BigInteger(), nullable=False),
    _created_at(),
    sa.Column("revoked_at", TZ),
    sa.Index("ix_share_links_image_id", "image_id"),
)

# --- credits (0004): an append-only ledger; the balance is derived, never stored alone ------

credit_entries = sa.Table(
    "credit_entries",
    metadata,
    sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),  # bigserial
    # No foreign key to users: the ledger is the financial record and outlives /delete_me.
    sa.Column("user_id", sa.BigInteger(), nullable=False),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("kind", credit_kind, nullable=False),
    sa.Column("amount", sa.Integer(), nullable=False),
    sa.Column("balance_after", sa.Integer(), nullable=False),
    sa.Column("idempotency_key", sa.Text(), nullable=False),
    sa.Column("subject", sa.Text()),
    sa.Column("reason", sa.Text()),
    sa.Column("actor_id", sa.BigInteger()),
    _created_at(),
    sa.UniqueConstraint("user_id", "seq"),
    sa.UniqueConstraint("idempotency_key"),
    sa.CheckConstraint("amount <> 0", name="amount"),
    sa.CheckConstraint("balance_after >= 0", name="balance_after"),
    sa.CheckConstraint("seq >= 1", name="seq"),
)

star_payments = sa.Table(
    "star_payments",
    metadata,
    sa.Column("telegram_payment_charge_id", sa.Text(), primary_key=True),
    sa.Column("user_id", sa.BigInteger(), nullable=False),
    sa.Column("package_id", sa.Text(), nullable=False),
    sa.Column("stars", sa.Integer(), nullable=False),
    sa.Column("credits", sa.Integer(), nullable=False),
    sa.Column("invoice_payload", sa.Text(), nullable=False),
    sa.Column("provider_payment_charge_id", sa.Text()),
    sa.Column("paid_at", TZ, nullable=False, server_default=NOW),
    sa.Column("refund_requested_at", TZ),
    sa.Column("refunded_at", TZ),
    sa.CheckConstraint("stars > 0", name="stars"),
    sa.CheckConstraint("credits > 0", name="credits"),
    sa.Index("ix_star_payments_user_id", "user_id"),
)

promo_codes = sa.Table(
    "promo_codes",
    metadata,
    sa.Column("code", sa.Text(), primary_key=True),
    sa.Column("credits", sa.Integer(), nullable=False),
    sa.Column("max_uses", sa.Integer(), nullable=False),
    sa.Column("uses", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("expires_at", TZ, nullable=False),
    sa.Column("created_by", sa.BigInteger(), nullable=False),
    _created_at(),
    sa.CheckConstraint("credits > 0", name="credits"),
    sa.CheckConstraint("max_uses > 0", name="max_uses"),
    sa.CheckConstraint("uses >= 0 AND uses <= max_uses", name="uses"),
)

promo_redemptions = sa.Table(
    "promo_redemptions",
    metadata,
    sa.Column(
        "code",
        sa.Text(),
        sa.ForeignKey("promo_codes.code", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("user_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("redeemed_at", TZ, nullable=False, server_default=NOW),
)


# --------------------------------------------------------------------------------------------
# Privileges: one writer per column
# --------------------------------------------------------------------------------------------

#: table -> role -> the columns that role may UPDATE. Primary keys, `created_at` and the columns
#: that tie a row to its parent or identity (user_id, avatar_id/generation_id of child rows, the
#: ledger's idempotency key) are written once on INSERT and never updated by anyone; foreign-key
#: actions (ON DELETE CASCADE / SET NULL) run as the table owner and need no grant.
OWNERS: Final[dict[str, dict[str, frozenset[str]]]] = {
    "users": {
        BOT: frozenset(
            {
                "username",
                "first_name",
                "language",
                "is_active",
                "is_admin",
                "main_avatar_id",
                "last_seen_at",
            }
        ),
    },
    "avatars": {
        BOT: frozenset(
            {
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
                "likeness_center",
                "likeness_spread",
                "likeness_faces",
            }
        ),
        TRAINER: frozenset(
            {
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
                "lora_upload_url",
                "lora_upload_expires_at",
            }
        ),
        STATUS: frozenset(
            {
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
                "lora_object_key",
            }
        ),
    },
    "photos": {
        BOT: frozenset(
            {
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
                "face_count",
                "face_area_ratio",
                "sharpness",
                "brightness",
                "phash",
                "embedding",
                "warnings",
            }
        ),
    },
    "fal_submissions": {
        TRAINER: frozenset(
            {
                "endpoint",
                "state",
                "request_id",
                "error",
                "submitted_at",
                "updated_at",
                "waiting_since",
                "ahead",
                "request",
            }
        ),
    },
    "generations": {
        BOT: frozenset(
            {
                "prompt",
                "user_prompt",
                "style_id",
                "aspect_ratio",
                "num_images",
                "seed",
                "lora_scale",
                "status",
                "progress_chat_id",
                "progress_message_id",
            }
        ),
        TRAINER: frozenset({"fal_request_id", "fal_endpoint", "submitted_at", "cost_usd"}),
        STATUS: frozenset(
            {
                "fal_status",
                "fal_response_data",
                "error",
                "finished_at",
                "last_status_check",
                "next_poll_at",
                "poll_count",
            }
        ),
    },
    "generated_images": {
        BOT: frozenset({"telegram_file_id", "is_favorite", "likeness", "likeness_distance"}),
    },
    # Shared infrastructure: every service relays its own outbox rows.
    "outbox": {role: frozenset({"published_at", "attempts"}) for role in ROLES},
    "processed_events": {},
    "fal_webhooks": {
        STATUS: frozenset({"processed_at"}),
    },
    "share_links": {
        BOT: frozenset({"revoked_at"}),
    },
    "reference_photos": {},
    "training_checks": {
        BOT: frozenset(
            {
                "state",
                "reason",
                "scores",
                "score",
                "decision",
                "decided_at",
                "checked_at",
                "left_out",
            }
        ),
    },
    # Append-only: nobody may UPDATE or DELETE a ledger entry.
    "credit_entries": {},
    "star_payments": {
        BOT: frozenset({"refund_requested_at", "refunded_at"}),
    },
    "promo_codes": {
        BOT: frozenset({"uses"}),
    },
    "promo_redemptions": {},
}

#: table -> roles that may INSERT rows.
INSERTERS: Final[dict[str, frozenset[str]]] = {
    "users": frozenset({BOT}),
    "avatars": frozenset({BOT}),
    "photos": frozenset({BOT}),
    "fal_submissions": frozenset({TRAINER}),
    "generations": frozenset({BOT}),
    "generated_images": frozenset({STATUS}),
    "outbox": frozenset(ROLES),
    "processed_events": frozenset(ROLES),
    "fal_webhooks": frozenset({STATUS}),
    "share_links": frozenset({BOT}),
    "reference_photos": frozenset({BOT}),
    "training_checks": frozenset({BOT}),
    "credit_entries": frozenset({BOT, TRAINER}),  # purchases/refunds/grants; charges at submit
    "star_payments": frozenset({BOT}),
    "promo_codes": frozenset({BOT}),
    "promo_redemptions": frozenset({BOT}),
}

#: table -> roles that may DELETE rows.
DELETERS: Final[dict[str, frozenset[str]]] = {
    "users": frozenset({BOT}),
    "avatars": frozenset({BOT}),
    "photos": frozenset({BOT}),
    "fal_submissions": frozenset({TRAINER}),  # a submission FAL refused may be retried (0003)
    "generations": frozenset({BOT}),
    "generated_images": frozenset({BOT}),
    "outbox": frozenset(ROLES),
    "processed_events": frozenset(ROLES),
    "fal_webhooks": frozenset({STATUS}),  # pruning old webhook bodies
    "share_links": frozenset({BOT}),
    "reference_photos": frozenset({BOT}),
    "training_checks": frozenset({BOT}),
    # The credit tables are financial records: nobody deletes them (promo codes expire).
    "credit_entries": frozenset(),
    "star_payments": frozenset(),
    "promo_codes": frozenset(),
    "promo_redemptions": frozenset(),
}

#: sequence -> roles that need USAGE on it (nextval() behind a serial column they INSERT into).
SEQUENCE_USERS: Final[dict[str, frozenset[str]]] = {
    "fal_webhooks_id_seq": frozenset({STATUS}),
    "credit_entries_id_seq": frozenset({BOT, TRAINER}),
}


def owner_of(table: str, column: str) -> str | None:
    """The role that may UPDATE `table.column`, or None if nobody may (set once on INSERT).

    Shared columns (the outbox's) have several; this returns None for them too.
    """
    writers = [role for role, cols in OWNERS.get(table, {}).items() if column in cols]
    return writers[0] if len(writers) == 1 else None
