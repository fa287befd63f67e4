"""Read models of the rows the bot works with (built from asyncpg records)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

from contracts import FalPriority, TrainingType


class AvatarStatus(StrEnum):
    """The user-facing lifecycle; the bot is its only writer."""

    DRAFT = "draft"
    UPLOADING = "uploading"
    READY = "ready"
    TRAINING = "training"
    COMPLETED = "completed"
    ERROR = "error"
    CANCELLED = "cancelled"


END_STATES = frozenset({AvatarStatus.COMPLETED, AvatarStatus.ERROR, AvatarStatus.CANCELLED})


class Gender(StrEnum):
    MALE = "male"
    FEMALE = "female"
    OTHER = "other"


@dataclass(frozen=True, kw_only=True)
class User:
    id: int
    language: str
    first_name: str
    is_active: bool
    is_admin: bool
    main_avatar_id: UUID | None

    @classmethod
    def from_record(cls, r: Any) -> User:
        return cls(
            id=r["id"],
            language=r["language"],
            first_name=r["first_name"],
            is_active=r["is_active"],
            is_admin=r["is_admin"],
            main_avatar_id=r["main_avatar_id"],
        )


@dataclass(frozen=True, kw_only=True)
class Avatar:
    id: UUID
    user_id: int
    name: str
    #: None for a style avatar: a look, not a person, is learned.
    gender: Gender | None
    status: AvatarStatus
    training_type: TrainingType
    fal_priority: FalPriority
    trigger_word: str
    training_attempt: int
    photo_count: int
    progress_chat_id: int | None
    progress_message_id: int | None
    keep_photos: bool = False

    @classmethod
    def from_record(cls, r: Any) -> Avatar:
        return cls(
            id=r["id"],
            user_id=r["user_id"],
            name=r["name"],
            gender=Gender(r["gender"]) if r["gender"] is not None else None,
            status=AvatarStatus(r["status"]),
            training_type=TrainingType(r["training_type"]),
            fal_priority=FalPriority(r["fal_priority"]),
            trigger_word=r["trigger_word"],
            training_attempt=r["training_attempt"],
            photo_count=r["photo_count"],
            progress_chat_id=r["progress_chat_id"],
            progress_message_id=r["progress_message_id"],
            keep_photos=bool(r.get("keep_photos", False)),
        )


@dataclass(frozen=True, kw_only=True)
class TypeStats:
    """One line of the admin's /stats."""

    training_type: str
    total: int
    completed: int
    failed: int
    p50_seconds: float | None
    p90_seconds: float | None

    @property
    def success_rate(self) -> float | None:
        finished = self.completed + self.failed
        return self.completed / finished if finished else None
