"""The generation wizard's state: FSM states and the draft kept in FSM data (NATS KV).

The draft is what the user picked so far (avatar, style or own text, format, count). It is
re-validated when it is used (the avatar is looked up again, with ownership, at confirm), so
whatever sits in storage can never widen what a user may do.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal
from uuid import UUID

from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup

from services.bot.app.models import AvatarStatus
from services.bot.avatars.service import AvatarService
from services.bot.generation.prompts import Catalogue, Subject, build
from services.bot.generation.service import GenerationSpec, new_seed

AspectCode = Literal["1_1", "3_4", "4_3", "9_16", "16_9"]
#: Telegram-safe codes (":" separates callback data fields) → FAL aspect ratios.
ASPECTS: dict[AspectCode, str] = {
    "1_1": "1:1",
    "3_4": "3:4",
    "4_3": "4:3",
    "9_16": "9:16",
    "16_9": "16:9",
}
COUNTS = (1, 2, 3, 4)
DEFAULT_ASPECT: AspectCode = "1_1"
DEFAULT_COUNT = 2
#: FAL's default LoRA strength; recorded so a repeat uses exactly what was used.
LORA_SCALE = 1.0


class Generate(StatesGroup):
    source = State()  # choosing a style, own text or a reference photo
    prompt = State()  # waiting for the user's own prompt text
    describe = State()  # waiting for a reference picture
    describing = State()  # the vision model is looking at it
    settings = State()  # format, count, confirm


@dataclass(frozen=True, kw_only=True)
class Draft:
    """What the next generation will be; `avatar_id` None means quick mode (no LoRA)."""

    avatar_id: UUID | None
    avatar_name: str | None = None
    style_id: str | None = None
    user_prompt: str | None = None
    aspect: AspectCode = DEFAULT_ASPECT
    count: int = DEFAULT_COUNT
    describe_id: str | None = None
    describe_message_id: int | None = None

    @property
    def aspect_ratio(self) -> str:
        return ASPECTS[self.aspect]

    @property
    def ready(self) -> bool:
        """A style or a prompt was chosen, so there is something to generate."""
        return self.style_id is not None or bool(self.user_prompt)

    def with_style(self, style_id: str) -> Draft:
        return replace(self, style_id=style_id, user_prompt=None)

    def with_prompt(self, prompt: str) -> Draft:
        return replace(self, style_id=None, user_prompt=prompt)

    def with_format(self, aspect: str | None = None, count: int | None = None) -> Draft:
        return replace(
            self,
            aspect=aspect_code(aspect) or self.aspect,
            count=count if count in COUNTS else self.count,
        )

    def to_fsm(self) -> dict[str, Any]:
        data = asdict(self)
        data["avatar_id"] = str(self.avatar_id) if self.avatar_id else None
        return {"draft": data}

    @classmethod
    def from_fsm(cls, data: dict[str, Any]) -> Draft | None:
        """The stored draft, or None when there is none (or it is not one of ours)."""
        raw = data.get("draft")
        if not isinstance(raw, dict):
            return None
        avatar_id: UUID | None = None
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            avatar_id = UUID(raw["avatar_id"]) if raw.get("avatar_id") else None
        if raw.get("avatar_id") and avatar_id is None:
            return None
        return cls(
            avatar_id=avatar_id,
            avatar_name=_str(raw.get("avatar_name")),
            style_id=_str(raw.get("style_id")),
            user_prompt=_str(raw.get("user_prompt")),
            aspect=aspect_code(raw.get("aspect")) or DEFAULT_ASPECT,
            count=int(raw["count"]) if raw.get("count") in COUNTS else DEFAULT_COUNT,
            describe_id=_str(raw.get("describe_id")),
            describe_message_id=_int(raw.get("describe_message_id")),
        )


def aspect_code(value: Any) -> AspectCode | None:
    """One of ours, or None (stored or typed values are never trusted as they are)."""
    return next((code for code in ASPECTS if code == value), None)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def compose(
    draft: Draft, user_id: int, avatars: AvatarService, catalogue: Catalogue
) -> GenerationSpec | None:
    """The generation a confirmed draft asks for, with the final prompt built from a fresh
    look at the avatar; None when the avatar is gone (or not ready, or not the user's)."""
    avatar = None
    if draft.avatar_id is not None:
        avatar = await avatars.get(user_id, draft.avatar_id)
        if avatar is None or avatar.status is not AvatarStatus.COMPLETED:
            return None
    style = catalogue.get(draft.style_id)
    if style is None and not draft.user_prompt:
        return None
    return GenerationSpec(
        avatar_id=avatar.id if avatar else None,
        prompt=build(Subject.of(avatar), style=style, text=draft.user_prompt),
        user_prompt=draft.user_prompt,
        style_id=style.id if style else None,
        aspect_ratio=draft.aspect_ratio,
        num_images=draft.count,
        seed=new_seed(),
        lora_scale=LORA_SCALE if avatar else None,
    )


async def load_draft(state: FSMContext) -> Draft | None:
    return Draft.from_fsm(await state.get_data())


async def save_draft(state: FSMContext, draft: Draft, step: State) -> None:
    await state.set_state(step)
    await state.set_data(draft.to_fsm())
