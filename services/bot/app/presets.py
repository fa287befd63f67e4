"""The quality presets a user picks for a training (the seed's `FalPriority`), as the bot
shows them: which ones each training type offers, their price and their typical duration.

What each preset sends to FAL (steps, learning rate, resolution buckets) is the trainer's
(`services/trainer/presets.py`, table in `docs/fal-fields.md`). The fast trainer used for
styles has no resolution option, so `high_res_only` would train a style exactly like
`quality`: a style is offered speed and quality only, never a dearer preset that buys
nothing. Durations are typical run times scaled from the step counts (FAL publishes none);
the queue wait comes on top and is shown live once training starts.
"""

from __future__ import annotations

from contracts import FalPriority, TrainingType
from services.bot.app.pricing import Pricing
from services.bot.app.texts import Translator

PRESETS: dict[TrainingType, tuple[FalPriority, ...]] = {
    TrainingType.PORTRAIT: (FalPriority.SPEED, FalPriority.QUALITY, FalPriority.HIGH_RES_ONLY),
    TrainingType.STYLE: (FalPriority.SPEED, FalPriority.QUALITY),
}
#: Typical minutes of training: portrait 1500 / 2500 / 2500 steps (the full-resolution bucket
#: only, so each step is slower), style 600 / 1000 steps.
TYPICAL_MINUTES: dict[TrainingType, dict[FalPriority, int]] = {
    TrainingType.PORTRAIT: {
        FalPriority.SPEED: 12,
        FalPriority.QUALITY: 20,
        FalPriority.HIGH_RES_ONLY: 25,
    },
    TrainingType.STYLE: {FalPriority.SPEED: 4, FalPriority.QUALITY: 7},
}


def offered(training_type: TrainingType, priority: FalPriority) -> bool:
    return priority in PRESETS[training_type]


def preset_lines(t: Translator, pricing: Pricing, training_type: TrainingType) -> str:
    """One line per preset of this type: name, price, typical duration, what it does."""
    return "\n".join(
        t(
            f"presets.line_{p.value}",
            price=pricing.training_price(p),
            minutes=TYPICAL_MINUTES[training_type][p],
        )
        for p in PRESETS[training_type]
    )


def preset_button(
    t: Translator, pricing: Pricing, training_type: TrainingType, priority: FalPriority
) -> str:
    return t.plain(
        f"presets.button_{priority.value}",
        price=pricing.training_price(priority),
        minutes=TYPICAL_MINUTES[training_type][priority],
    )


def price_range(pricing: Pricing) -> str:
    """ "30–60", or one number when every preset costs the same."""
    prices = sorted({pricing.training_price(p) for p in FalPriority})
    return str(prices[0]) if len(prices) == 1 else f"{prices[0]}–{prices[-1]}"
