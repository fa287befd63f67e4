"""What the trainer records about a training is what FAL was sent: each recorded column is
NULL exactly when its parameter was not sent, and equal to it otherwise; nothing is sent
that the endpoint does not document. (It recorded `captioning = true` for styles sent with
`is_style`, which turns captioning off, and a LoRA rank neither endpoint takes.)"""

from __future__ import annotations

import pytest

from contracts.base import FalPriority, TrainingType
from services.trainer.presets import PORTRAIT_ENDPOINT, STYLE_ENDPOINT, plan_training

#: Each endpoint's documented input (https://fal.ai/models/<endpoint>/llms.txt).
DOCUMENTED = {
    PORTRAIT_ENDPOINT: {
        "images_data_url",
        "trigger_phrase",
        "learning_rate",
        "steps",
        "multiresolution_training",
        "subject_crop",
        "create_masks",
        "data_archive_format",
        "resume_from_checkpoint",
    },
    STYLE_ENDPOINT: {
        "images_data_url",
        "trigger_word",
        "steps",
        "create_masks",
        "is_style",
        "is_input_format_already_preprocessed",
        "data_archive_format",
    },
}
#: Recorded column → the argument it records (None: no endpoint takes it).
COLUMNS = {
    "learning_rate": "learning_rate",
    "steps": "steps",
    "multiresolution_training": "multiresolution_training",
    "subject_crop": "subject_crop",
    "create_masks": "create_masks",
    "lora_rank": None,
}


@pytest.mark.parametrize("priority", list(FalPriority))
@pytest.mark.parametrize("training_type", list(TrainingType))
def test_a_column_records_only_a_value_that_was_sent(
    training_type: TrainingType, priority: FalPriority
) -> None:
    plan = plan_training(training_type, priority, "TOKann", 1)
    sent = plan.arguments("https://v3.fal.media/files/x/photos.zip")
    assert set(sent) <= DOCUMENTED[plan.endpoint]
    for column, argument in COLUMNS.items():
        recorded = getattr(plan, column)
        if argument is None or argument not in sent:
            assert recorded is None, column
        else:
            assert recorded == sent[argument], column
    trigger = "trigger_phrase" if plan.endpoint == PORTRAIT_ENDPOINT else "trigger_word"
    assert sent[trigger] == plan.trigger_phrase
    if plan.endpoint == STYLE_ENDPOINT:
        assert sent["is_style"] is True
        assert plan.captioning is False  # `is_style` deactivates captioning (FAL's schema)
    else:
        assert plan.captioning is None  # the portrait trainer has no captioning switch
