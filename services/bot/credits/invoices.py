"""Signed invoice payloads for Telegram Stars and the verdict on a payment that carries one.

Why signed: the payload comes back to us in `pre_checkout_query` and `successful_payment`,
and it is the only thing tying a payment to an offer. Anyone can make a client send a
payload of their choosing, so the payload states the whole offer (package, user, stars,
credits, when) and an HMAC proves we issued exactly that. Nothing in it is secret; the key
is derived from the bot token, so there is no extra secret to configure, and a leaked
payload reveals neither the token nor the key.

Format (ASCII, at most 128 bytes as Telegram requires):
`v1.<package>.<user_id>.<stars>.<credits>.<issued_unix>.<sig>`, `sig` = the first 32 hex
digits (128 bits) of HMAC-SHA256(key, everything before the last dot).

Pure functions, no I/O: the unit tests cover every verdict.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import StrEnum

from services.bot.app.pricing import Package, Pricing

__all__ = ["CURRENCY", "InvoiceSigner", "Offer", "Verdict", "judge"]

CURRENCY = "XTR"  # Telegram Stars
MAX_PAYLOAD_BYTES = 128
SIG_HEX = 32  # also spelled out in _PAYLOAD
#: An invoice "issued" further than this in the future was not issued by this clock.
MAX_CLOCK_SKEW_SECONDS = 300
_KEY_LABEL = b"aisha.invoice"
_PAYLOAD = re.compile(
    r"^v1\.(?P<package>[a-z0-9_]{1,16})\.(?P<user>[1-9]\d{0,19})\.(?P<stars>[1-9]\d{0,4})"
    r"\.(?P<credits>[1-9]\d{0,8})\.(?P<issued>\d{1,12})\.(?P<sig>[0-9a-f]{32})$"
)


class Verdict(StrEnum):
    """Why a payload is (not) acceptable; the values are metric labels and locale keys."""

    OK = "ok"
    FORGED = "forged"  # not our format or not our signature
    WRONG_USER = "wrong_user"  # issued to someone else
    UNKNOWN_PACKAGE = "unknown_package"  # no longer sold
    WRONG_AMOUNT = "wrong_amount"  # total differs from the offer, or the price changed since
    WRONG_CURRENCY = "wrong_currency"  # not Stars
    STALE = "stale"  # older than the invoice TTL


@dataclass(frozen=True, slots=True)
class Offer:
    """What an invoice promised: `stars` buy `credits` of `package` for `user_id`."""

    package: str
    user_id: int
    stars: int
    credits: int
    issued: int  # unix seconds


class InvoiceSigner:
    """Writes and reads signed payloads with a key derived from the bot token."""

    def __init__(self, bot_token: str) -> None:
        self._key = hmac.new(bot_token.encode(), _KEY_LABEL, hashlib.sha256).digest()

    def _mac(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:SIG_HEX]

    def sign(self, offer: Offer) -> str:
        body = f"v1.{offer.package}.{offer.user_id}.{offer.stars}.{offer.credits}.{offer.issued}"
        payload = f"{body}.{self._mac(body)}"
        if len(payload.encode()) > MAX_PAYLOAD_BYTES:
            raise ValueError("invoice payload longer than Telegram allows")
        return payload

    def offer(self, package: Package, user_id: int, now: float) -> str:
        """The payload for an invoice of `package` to `user_id`, issued `now`."""
        return self.sign(Offer(package.id, user_id, package.stars, package.credits, int(now)))

    def read(self, payload: str) -> Offer | None:
        """The offer, or None when the payload is not one we signed."""
        match = _PAYLOAD.match(payload)
        if match is None:
            return None
        body = payload.rpartition(".")[0]
        if not hmac.compare_digest(match["sig"], self._mac(body)):
            return None
        return Offer(
            match["package"],
            int(match["user"]),
            int(match["stars"]),
            int(match["credits"]),
            int(match["issued"]),
        )


def judge(
    offer: Offer | None,
    *,
    payer_id: int,
    currency: str,
    total_amount: int,
    pricing: Pricing,
    now: float,
    paid: bool = False,
) -> Verdict:
    """May this payment go ahead (`paid=False`, pre-checkout) / be credited (`paid=True`)?

    At pre-checkout the current price must still match the offer and the invoice must be
    younger than the TTL: the user is shown a fresh invoice instead. Once Telegram has
    taken the Stars (`paid`), the signed offer is honoured as it was made — age and a
    price change since no longer matter, but who paid, what and how much still do.
    """
    if currency != CURRENCY:
        return Verdict.WRONG_CURRENCY
    if offer is None:
        return Verdict.FORGED
    if offer.user_id != payer_id:
        return Verdict.WRONG_USER
    package = pricing.package(offer.package)
    if package is None:
        return Verdict.UNKNOWN_PACKAGE
    if total_amount != offer.stars:
        return Verdict.WRONG_AMOUNT
    if paid:
        return Verdict.OK
    if (package.stars, package.credits) != (offer.stars, offer.credits):
        return Verdict.WRONG_AMOUNT
    age = now - offer.issued
    if age > pricing.invoice_ttl_minutes * 60 or age < -MAX_CLOCK_SKEW_SECONDS:
        return Verdict.STALE
    return Verdict.OK
