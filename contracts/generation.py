"""Events of an image generation with an avatar's LoRA (or without, for a quick try)."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from contracts.base import Event, FailureReason


class UpscaleSource(msgspec.Struct, frozen=True, kw_only=True):
    """The stored picture an upscale enlarges, and by how much (2 or 4)."""

    image_id: str
    object_name: str
    width: int
    height: int
    factor: int


class ReferenceSource(msgspec.Struct, frozen=True, kw_only=True):
    """The user's reference photo a generation re-draws with the avatar's LoRA
    (`fal-ai/flux-lora/image-to-image`), and how far it may move away from it."""

    reference_id: str
    object_name: str
    width: int
    height: int
    #: FAL's `strength` (0.01–1): how much of the photo is re-drawn (1 = all of it).
    strength: float


class AnimateSource(msgspec.Struct, frozen=True, kw_only=True):
    """The stored picture an animation starts from, the clip's length and the motion asked
    for (the user's words, or our default when they skipped it)."""

    image_id: str
    object_name: str
    width: int
    height: int
    seconds: int
    motion_prompt: str


class GenerationRequested(Event, frozen=True, kw_only=True, tag="generation.requested"):
    """The bot stored the generation row; the trainer submits it to FAL."""

    subject: ClassVar[str] = "aisha.generation.requested"

    generation_id: str
    user_id: int
    avatar_id: str | None
    prompt: str
    aspect_ratio: str
    num_images: int
    seed: int
    #: Credits quoted to the user (per image × images); charged at submission, once.
    credits: int = 0
    #: Set for an upscale (a FAL upscaler enlarges this picture instead of FLUX drawing).
    upscale: UpscaleSource | None = None
    #: Set for a re-drawn reference photo (image-to-image with the avatar's LoRA).
    reference: ReferenceSource | None = None
    #: Set for an animation (a FAL image-to-video model makes a short clip of this picture).
    animate: AnimateSource | None = None


class GenerationSubmitted(Event, frozen=True, kw_only=True, tag="generation.submitted"):
    """FAL accepted the generation job."""

    subject: ClassVar[str] = "aisha.generation.submitted"

    generation_id: str
    user_id: int
    request_id: str
    endpoint: str


class GeneratedImage(msgspec.Struct, frozen=True, kw_only=True):
    """One stored result image (object-store key, not FAL's expiring URL)."""

    object_name: str
    width: int
    height: int
    content_type: str
    nsfw: bool = False


class GenerationCompleted(Event, frozen=True, kw_only=True, tag="generation.completed"):
    """Results were fetched and stored; the bot sends them as an album."""

    subject: ClassVar[str] = "aisha.generation.completed"

    generation_id: str
    user_id: int
    request_id: str
    images: tuple[GeneratedImage, ...]
    seed: int


class GenerationFailed(Event, frozen=True, kw_only=True, tag="generation.failed"):
    """The generation ended without images; `reason` is localized by the bot."""

    subject: ClassVar[str] = "aisha.generation.failed"

    generation_id: str
    user_id: int
    reason: FailureReason
    request_id: str | None = None
    detail: str | None = None


class DescribeRequested(Event, frozen=True, kw_only=True, tag="generation.describe_requested"):
    """Photo to prompt: the user's reference picture is stored; the trainer asks a FAL
    vision model to describe it."""

    subject: ClassVar[str] = "aisha.generation.describe_requested"

    request_id: str
    user_id: int
    avatar_id: str | None
    object_name: str


class PromptDescribed(Event, frozen=True, kw_only=True, tag="generation.described"):
    """The vision model's description (or why there is none); the bot builds the prompt."""

    subject: ClassVar[str] = "aisha.generation.described"

    request_id: str
    user_id: int
    avatar_id: str | None
    caption: str | None = None
    reason: FailureReason | None = None
