"""What a training is sent with, per training type and priority.

This is where the seed's FAL fields get their meaning (docs/fal-fields.md has examples):
the portrait trainer learns a face (subject crop, masks, low learning rate, many steps);
style avatars use the fast trainer with `is_style`, which per FAL's schema "deactivates
segmentation, captioning" (https://fal.ai/models/fal-ai/flux-lora-fast-training/llms.txt).

A column records only a value FAL was sent: a parameter the endpoint does not take is
`None` (NULL), never a value we imagine it used — no learning rate, subject crop or
multiresolution for the fast trainer, no LoRA rank for either (neither takes one), no
`captioning` for a portrait (no such switch), and `captioning` false for a style
(`is_style` turns it off).

The priority (`fal_priority`) is the quality preset the user picked on the bot's
confirmation card, not FAL's queue priority (we never send `X-Fal-Queue-Priority`, so every
preset queues as `normal`): `speed` trades steps for time, `quality` is FAL's default
(2500 steps, learning rate 0.00009 for the portrait trainer), `high_res_only` trains the
portrait only on the full-resolution bucket (`multiresolution_training` false); the fast
trainer has no such option, so for a style it is `quality` (the bot does not offer it for
a style). The table with prices and durations: docs/fal-fields.md, "Quality presets".
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
#: A redo (the free retrain a poor likeness check offered) trains this much longer: a LoRA
#: that does not reproduce the face has most often not learnt it yet (under-trained), and
#: the weakest photos were left out of its set by the bot (`docs/likeness.md`).
REDO_STEPS_FACTOR = 1.4


@dataclass(frozen=True, kw_only=True)
class TrainingPlan:
    """Everything the trainer records in its avatar columns, and the FAL arguments."""

    endpoint: str
    finetune_type: str
    finetune_comment: str
    learning_rate: float | None
    steps: int
    lora_rank: int | None
    trigger_phrase: str
    multiresolution_training: bool | None
    subject_crop: bool | None
    create_masks: bool
    captioning: bool | None

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
            "is_style": True,  # no segmentation, no captioning (see `captioning`)
            "is_input_format_already_preprocessed": False,  # a zip of plain images
        }


def plan_training(
    training_type: TrainingType,
    priority: FalPriority,
    trigger_word: str,
    attempt: int,
    *,
    redo: bool = False,
) -> TrainingPlan:
    steps = _STEPS[training_type][priority]
    comment = f"aisha {training_type.value}/{priority.value} attempt {attempt}"
    if redo:
        steps = round(steps * REDO_STEPS_FACTOR)
        comment += " (likeness redo)"
    if training_type is TrainingType.PORTRAIT:
        return TrainingPlan(
            endpoint=PORTRAIT_ENDPOINT,
            finetune_type="lora",
            finetune_comment=comment,
            learning_rate=0.00009,
            steps=steps,
            lora_rank=None,  # not a parameter of the endpoint
            trigger_phrase=trigger_word,
            multiresolution_training=priority is not FalPriority.HIGH_RES_ONLY,
            subject_crop=True,
            create_masks=True,
            captioning=None,  # the portrait trainer has no captioning switch
        )
    return TrainingPlan(
        endpoint=STYLE_ENDPOINT,
        finetune_type="lora",
        finetune_comment=comment,
        learning_rate=None,
        steps=steps,
        lora_rank=None,
        trigger_phrase=trigger_word,
        multiresolution_training=None,  # the fast trainer has no such parameter
        subject_crop=None,  # nor this one
        create_masks=False,
        captioning=False,  # `is_style` turns captioning off
    )
