"""Small texts about credits that several flows append to their own messages."""

from __future__ import annotations

from services.bot.app.texts import Translator
from services.bot.credits.service import About, HistoryItem
from services.kit import credits
from services.kit.credits import Kind


def refund_note(t: Translator, refund: credits.Entry) -> str:
    """ "N credits are back", under a failed training's or generation's message."""
    return t("credits.refunded", credits=refund.amount, balance=refund.balance_after)


def entry_line(t: Translator, item: HistoryItem, *, raw: bool = False) -> str:
    """One ledger entry on one line, noting what it was about. The admin's /ledger (`raw`)
    shows the stored subject or reason instead: the ids support looks things up by."""
    entry = item.entry
    note = entry.reason or entry.subject if raw else _about(t, item)
    return t(
        "credits.entry",
        seq=entry.seq,
        date=entry.created_at.strftime("%Y-%m-%d %H:%M"),
        kind=t.plain(f"credits.kind_{entry.kind.value}"),
        amount=f"{entry.amount:+d}",
        balance=entry.balance_after,
        note=f" · {note[:60]}" if note else "",
    )


def _about(t: Translator, item: HistoryItem) -> str | None:
    """The avatar's name, the package as the shop sells it, "pictures" for a returned
    generation charge; else the promo code or the grant's note. Never a bare id."""
    entry = item.entry
    match item.about:
        case About.AVATAR:
            return item.avatar_name or t.plain("credits.about_avatar_gone")
        case About.PAYMENT if item.stars is not None:
            return t.plain("credits.package_button", stars=item.stars, credits=item.package_credits)
        case About.PAYMENT:
            return None
        case About.GENERATION:
            returned = entry.kind is Kind.REFUND
            return t.plain("credits.kind_generation_charge") if returned else None
    return entry.reason or entry.subject
