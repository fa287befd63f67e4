"""Small texts about credits that several flows append to their own messages."""

from __future__ import annotations

from services.bot.texts import Translator
from services.kit import credits


def refund_note(t: Translator, refund: credits.Entry) -> str:
    """ "N credits are back", under a failed training's or generation's message."""
    return t("credits.refunded", credits=refund.amount, balance=refund.balance_after)
