"""Admin and promo command arguments: bounds, normalization, and nothing accepted by accident."""

from __future__ import annotations

import pytest

from services.bot.app.texts import LANGUAGES, Texts
from services.bot.credits.callbacks import ShopCb
from services.bot.credits.invoices import Verdict
from services.bot.credits.promo_codes import (
    ArgError,
    GrantOutcome,
    GrantRequest,
    PromoOutcome,
    PromoSpec,
    normalize_code,
    parse_grant,
    parse_promo,
    parse_user_id,
)
from services.bot.credits.refunds import RefundOutcome
from services.bot.credits.service import PaymentOutcome
from services.kit import credits


def test_promo_spec_is_normalized() -> None:
    assert parse_promo("  spring-25  20 30 100 ") == PromoSpec("SPRING-25", 20, 30, 100)
    assert parse_promo("ABC 100000 365 1000000") == PromoSpec("ABC", 100000, 365, 1000000)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ("", ArgError.PROMO_USAGE),
        ("CODE 1 1", ArgError.PROMO_USAGE),
        ("CODE 1 1 1 extra", ArgError.PROMO_USAGE),
        ("AB 1 1 1", ArgError.PROMO_BAD_CODE),
        ("X" * 33 + " 1 1 1", ArgError.PROMO_BAD_CODE),
        ("КОД 1 1 1", ArgError.PROMO_BAD_CODE),
        ("CO.DE 1 1 1", ArgError.PROMO_BAD_CODE),
        ("CODE 0 1 1", ArgError.PROMO_BAD_CREDITS),
        ("CODE -5 1 1", ArgError.PROMO_BAD_CREDITS),
        ("CODE 100001 1 1", ArgError.PROMO_BAD_CREDITS),
        ("CODE 1e3 1 1", ArgError.PROMO_BAD_CREDITS),
        ("CODE 10 0 1", ArgError.PROMO_BAD_DAYS),
        ("CODE 10 366 1", ArgError.PROMO_BAD_DAYS),
        ("CODE 10 30 0", ArgError.PROMO_BAD_USES),
        ("CODE 10 30 1000001", ArgError.PROMO_BAD_USES),
        ("CODE 10 30 99999999999999999999", ArgError.PROMO_BAD_USES),
    ],
)
def test_bad_promo_specs(args: str, error: ArgError) -> None:
    assert parse_promo(args) is error


def test_codes_are_case_insensitive() -> None:
    assert normalize_code(" welcome_1 ") == "WELCOME_1"
    assert normalize_code("no spaces") is None
    assert normalize_code("<b>x</b>") is None


def test_grant_request() -> None:
    assert parse_grant("42 100") == GrantRequest(42, 100, None)
    assert parse_grant("42 100  sorry for the outage ") == GrantRequest(
        42, 100, "sorry for the outage"
    )
    long = parse_grant("42 1 " + "x" * 500)
    assert isinstance(long, GrantRequest)
    assert long.reason == "x" * 200


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ("", ArgError.GRANT_USAGE),
        ("42", ArgError.GRANT_USAGE),
        ("abc 10", ArgError.GRANT_BAD_USER),
        ("-42 10", ArgError.GRANT_BAD_USER),
        ("0 10", ArgError.GRANT_BAD_USER),
        ("99999999999999999999 10", ArgError.GRANT_BAD_USER),
        ("42 0", ArgError.GRANT_BAD_AMOUNT),
        ("42 -10", ArgError.GRANT_BAD_AMOUNT),
        ("42 100001", ArgError.GRANT_BAD_AMOUNT),
        ("42 ten", ArgError.GRANT_BAD_AMOUNT),
        ("42 1.5", ArgError.GRANT_BAD_AMOUNT),
    ],
)
def test_bad_grants(args: str, error: ArgError) -> None:
    assert parse_grant(args) is error


def test_user_id_argument() -> None:
    assert parse_user_id(" 123 ") == 123
    assert parse_user_id("") is None
    assert parse_user_id("12 34") is None
    assert parse_user_id("9" * 20) is None  # past bigint


@pytest.mark.parametrize(
    "data",
    [
        ShopCb(action="open"),
        ShopCb(action="buy", package="a" * 16),
        ShopCb(action="refund", seq=2**31 - 1),
        ShopCb(action="refund_yes", seq=123456),
    ],
)
def test_shop_buttons_fit_and_round_trip(data: ShopCb) -> None:
    packed = data.pack()
    assert len(packed.encode()) <= 64
    assert ShopCb.unpack(packed) == data


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_outcome_the_bot_answers_has_a_text(lang: str) -> None:
    catalog = Texts.load().catalog(lang)
    keys = [f"credits.declined_{v.value}" for v in Verdict if v is not Verdict.OK]
    keys += [
        f"credits.payment_{o.value}" for o in PaymentOutcome if o is not PaymentOutcome.DUPLICATE
    ]
    keys += [f"credits.refund_{o.value}" for o in RefundOutcome]
    keys += [f"credits.promo_{o.value}" for o in PromoOutcome]
    keys += [f"credits.kind_{k.value}" for k in credits.Kind]
    keys += [f"admin.{e.value}" for e in ArgError]
    keys += [f"admin.grant_{o.value}" for o in GrantOutcome]
    assert [k for k in keys if k not in catalog] == []
