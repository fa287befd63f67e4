"""Signed Stars invoice payloads: round trip, size, tampering, and every pre-checkout verdict."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.bot.app.pricing import Package, Pricing, parse_packages
from services.bot.credits.invoices import (
    CURRENCY,
    MAX_PAYLOAD_BYTES,
    InvoiceSigner,
    Offer,
    Verdict,
    judge,
)

TOKEN = "123456:unit-test-token"
NOW = 1_800_000_000.0
PRICING = Pricing(packages=parse_packages("avatar:250:50,images10:50:10"), invoice_ttl_minutes=60)
AVATAR = PRICING.packages[0]
USER = 42


@pytest.fixture
def signer() -> InvoiceSigner:
    return InvoiceSigner(TOKEN)


def verdict(signer: InvoiceSigner, payload: str, **overrides: object) -> Verdict:
    args: dict[str, object] = {
        "payer_id": USER, "currency": CURRENCY, "total_amount": AVATAR.stars,
        "pricing": PRICING, "now": NOW,
    }  # fmt: skip
    args.update(overrides)
    return judge(signer.read(payload), **args)  # type: ignore[arg-type]  # test kwargs


def test_payload_round_trips_and_says_nothing_secret(signer: InvoiceSigner) -> None:
    payload = signer.offer(AVATAR, USER, NOW)
    assert signer.read(payload) == Offer("avatar", USER, 250, 50, int(NOW))
    assert payload.startswith(f"v1.avatar.{USER}.250.50.{int(NOW)}.")
    assert TOKEN.partition(":")[2] not in payload
    assert len(payload.split(".")[-1]) == 32


@given(
    package=st.from_regex(r"[a-z0-9_]{1,16}", fullmatch=True),
    user=st.integers(1, 2**63 - 1),
    stars=st.integers(1, 10_000),
    credits=st.integers(1, 999_999),
)
def test_any_offer_fits_telegram_payload_limit(
    package: str, user: int, stars: int, credits: int
) -> None:
    signer = InvoiceSigner(TOKEN)
    payload = signer.offer(Package(package, stars, credits), user, NOW)
    assert len(payload.encode()) <= MAX_PAYLOAD_BYTES
    assert signer.read(payload) == Offer(package, user, stars, credits, int(NOW))


def test_valid_invoice_is_ok(signer: InvoiceSigner) -> None:
    assert verdict(signer, signer.offer(AVATAR, USER, NOW - 60)) is Verdict.OK


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p.replace(".250.50.", ".250.500."),  # more credits
        lambda p: p.replace(".250.50.", ".25.50."),  # cheaper
        lambda p: p.replace(f".{USER}.", ".43."),  # someone else
        lambda p: p[:-1] + ("0" if p[-1] != "0" else "1"),  # signature bit
        lambda p: p.rsplit(".", 1)[0],  # no signature
        lambda p: p.replace("v1.", "v2.", 1),
        lambda p: p.upper(),
        lambda p: p + ".",
        lambda p: "",
        lambda p: "credits:50",
    ],
)
def test_tampered_payload_is_forged(signer: InvoiceSigner, tamper: Callable[[str], str]) -> None:
    assert verdict(signer, tamper(signer.offer(AVATAR, USER, NOW))) is Verdict.FORGED


def test_another_bots_key_is_forged(signer: InvoiceSigner) -> None:
    other = InvoiceSigner("654321:another-bot-token").offer(AVATAR, USER, NOW)
    assert verdict(signer, other) is Verdict.FORGED


def test_someone_elses_invoice(signer: InvoiceSigner) -> None:
    assert verdict(signer, signer.offer(AVATAR, USER, NOW), payer_id=USER + 1) is Verdict.WRONG_USER


def test_unknown_package(signer: InvoiceSigner) -> None:
    payload = signer.offer(Package("gone", 250, 50), USER, NOW)
    assert verdict(signer, payload) is Verdict.UNKNOWN_PACKAGE


@pytest.mark.parametrize("total", [249, 251, 1])
def test_paying_another_amount(signer: InvoiceSigner, total: int) -> None:
    payload = signer.offer(AVATAR, USER, NOW)
    assert verdict(signer, payload, total_amount=total) is Verdict.WRONG_AMOUNT


@pytest.mark.parametrize("changed", [Package("avatar", 300, 50), Package("avatar", 250, 60)])
def test_price_changed_since_the_invoice(signer: InvoiceSigner, changed: Package) -> None:
    payload = signer.offer(AVATAR, USER, NOW)
    pricing = dataclasses.replace(PRICING, packages=(changed,))
    assert verdict(signer, payload, pricing=pricing) is Verdict.WRONG_AMOUNT
    # once paid, the signed offer is honoured as made
    assert verdict(signer, payload, pricing=pricing, paid=True) is Verdict.OK


def test_wrong_currency(signer: InvoiceSigner) -> None:
    payload = signer.offer(AVATAR, USER, NOW)
    assert verdict(signer, payload, currency="USD") is Verdict.WRONG_CURRENCY


def test_stale_and_future_invoices(signer: InvoiceSigner) -> None:
    ttl = PRICING.invoice_ttl_minutes * 60
    assert verdict(signer, signer.offer(AVATAR, USER, NOW - ttl + 5)) is Verdict.OK
    old = signer.offer(AVATAR, USER, NOW - ttl - 5)
    assert verdict(signer, old) is Verdict.STALE
    assert verdict(signer, old, paid=True) is Verdict.OK  # paid in time: age no longer matters
    assert verdict(signer, signer.offer(AVATAR, USER, NOW + 3600)) is Verdict.STALE


def test_paid_invoice_still_checks_who_and_how_much(signer: InvoiceSigner) -> None:
    payload = signer.offer(AVATAR, USER, NOW)
    assert verdict(signer, payload, paid=True, payer_id=7) is Verdict.WRONG_USER
    assert verdict(signer, payload, paid=True, total_amount=1) is Verdict.WRONG_AMOUNT
    assert verdict(signer, "v1.x", paid=True) is Verdict.FORGED
