"""Where our copy of a trained LoRA lives in the Object Store, for every service that
touches it: the status service writes it, the trainer re-uploads it to FAL, the bot deletes
it (`/delete_me`, an avatar's deletion, the orphan sweep).

Both files of a training sit under one prefix, `lora/<avatar_id>/<attempt>/`, in the
`aisha_images` bucket (files fetched from FAL, like the generated images): the LoRA
weights as `lora.safetensors` (its name is `avatars.lora_object_key`) and FAL's config
file beside it as `config.json`.
"""

from __future__ import annotations

PREFIX = "lora/"
WEIGHTS = "lora.safetensors"
CONFIG = "config.json"


def weights_name(avatar_id: str, attempt: int) -> str:
    return f"{PREFIX}{avatar_id}/{attempt}/{WEIGHTS}"


def config_name(weights: str) -> str:
    """The config file stored beside the weights named `weights`."""
    return f"{weights.rpartition('/')[0]}/{CONFIG}"


def object_names(weights: str | None) -> list[str]:
    """Every object a `lora_object_key` stands for (none when there is no copy)."""
    return [] if not weights else [weights, config_name(weights)]
