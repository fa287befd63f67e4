"""The prompt system: a curated style catalogue (data file) and the prompt builder."""

from services.bot.generation.prompts.builder import (
    PromptRejected,
    Subject,
    build,
    from_caption,
    vary,
)
from services.bot.generation.prompts.catalogue import Catalogue, CatalogueError, Style

__all__ = [
    "Catalogue",
    "CatalogueError",
    "PromptRejected",
    "Style",
    "Subject",
    "build",
    "from_caption",
    "vary",
]
