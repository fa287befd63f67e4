"""What a training is sent with, per training type and priority.

This is where the seed's FAL fields get their meaning (docs/fal-fields.md has examples):
the portrait trainer learns a face (subject crop, masks, low learning rate, many steps);
style avatars use the fast trainer with `is_style` (auto-captioning, no masks). The
priority is a preset: `speed` trades steps for time, `quality` is the default,
`high_res_only` trains only on the full-resolution bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.base import FalPriority, TrainingType

PORTRAIT_ENDPOINT = "fal-ai/flux-lora-portrait-trainer"
STYLE_ENDPOINT = "fal-ai/flux-lora-fast-training"

_STEPS: dict[TrainingType, dict[FalPriority, int]] = {
    TrainingType.PORTRAIT: {
        FalPriority.SPEED: 1500,
        FalPriority.QUALITY: 2500,
        FalPriority.HIGH_RES_ONLY: 2500,
    },
    TrainingType.STYLE: {
        FalPriority.SPEED: 600,
        FalPriority.QUALITY: 1000,
        FalPriority.HIGH_RES_ONLY: 1000,
    },
}


@dataclass(frozen=True, kw_only=True)
class TrainingPlan:
    """Everything the trainer records in its avatar columns, and the FAL arguments."""

    endpoint: str
    finetune_type: str
    finetune_comment: str
    learning_rate: float | None
    steps: int
    lora_rank: int
    trigger_phrase: str
    multiresolution_training: bool
    subject_crop: bool
    create_masks: bool
    captioning: bool

    def arguments(self, images_data_url: str) -> dict[str, Any]:
        if self.endpoint == PORTRAIT_ENDPOINT:
            return {
                "images_data_url": images_data_url,
                "trigger_phrase": self.trigger_phrase,
                "learning_rate": self.learning_rate,
                "steps": self.steps,
                "multiresolution_training": self.multiresolution_training,
                "subject_crop": self.subject_crop,
                "create_masks": self.create_masks,
            }
        return {
            "images_data_url": images_data_url,
            "trigger_word": self.trigger_phrase,
            "steps": self.steps,
            "create_masks": self.create_masks,
            "is_style": True,
            "is_input_format_already_preprocessed": not self.captioning,
        }


def plan_training(
    training_type: TrainingType, priority: FalPriority, trigger_word: str, attempt: int
) -> TrainingPlan:
    steps = _STEPS[training_type][priority]
    comment = f"aisha {training_type.value}/{priority.value} attempt {attempt}"
    if training_type is TrainingType.PORTRAIT:
        return TrainingPlan(
            endpoint=PORTRAIT_ENDPOINT,
            finetune_type="lora",
            finetune_comment=comment,
            learning_rate=0.00009,
            steps=steps,
            lora_rank=16,
            trigger_phrase=trigger_word,
            multiresolution_training=priority is not FalPriority.HIGH_RES_ONLY,
            subject_crop=True,
            create_masks=True,
            captioning=False,
        )
    return TrainingPlan(
        endpoint=STYLE_ENDPOINT,
        finetune_type="lora",
        finetune_comment=comment,
        learning_rate=None,
        steps=steps,
        lora_rank=32,
        trigger_phrase=trigger_word,
        multiresolution_training=priority is not FalPriority.HIGH_RES_ONLY,
        subject_crop=False,
        create_masks=False,
        captioning=True,
    )
