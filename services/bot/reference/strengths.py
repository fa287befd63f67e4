"""The three strengths a user chooses from, and FAL's `strength` each stands for.

FAL's image-to-image `strength` (0.01–1) is how much of the photo is re-drawn: at 1 nothing
of it is kept, near 0 it comes back unchanged. The face must be re-drawn for the avatar to
appear, and below ~0.7 FLUX keeps the original face, so every step is at least 0.75:

* 1 "keep the composition" — 0.75: pose, framing, clothes and colours stay; the person
  becomes the avatar.
* 2 "balanced" — 0.85: between the two; the scene is recognisable, details change.
* 3 "free" — 0.95: only the layout and palette are kept (FAL's `flux/dev/image-to-image`
  default, the value its page calls best for FLUX).
"""

from __future__ import annotations

STRENGTHS: dict[int, float] = {1: 0.75, 2: 0.85, 3: 0.95}


def strength_of(step: int) -> float:
    """FAL's `strength` for a step; KeyError for a step we do not offer."""
    return STRENGTHS[step]


def step_of(strength: float | None) -> int:
    """The step a stored strength was chosen as (the nearest; 2 when unknown)."""
    if strength is None:
        return 2
    return min(STRENGTHS, key=lambda step: abs(STRENGTHS[step] - strength))
