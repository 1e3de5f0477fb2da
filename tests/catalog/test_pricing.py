"""Pure pricing math: DESIGN.md worked examples plus hypothesis properties (no DB, no Django)."""

from __future__ import annotations

import json
from decimal import Decimal
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog.price_models import price_model
from catalog.pricing import (
    CURRENCY_EXPONENTS,
    PriceResult,
    PricingError,
    Tier,
    TierPiece,
    currency_exponent,
    price_flat_fee,
    price_graduated,
    price_package,
    price_per_unit,
    price_volume,
    prorate,
    quantize_minor,
    validate_tiers,
)

D = Decimal
FAST = settings(max_examples=200, deadline=None)

# The DESIGN.md-style tier table used by the worked examples.
TIERS = (
    Tier(up_to=D("1000"), unit_amount=D("1.00")),
    Tier(up_to=D("5000"), unit_amount=D("0.80"), flat_amount=D("50.00")),
    Tier(up_to=None, unit_amount=D("0.50"), flat_amount=D("100.00")),
)


# --- worked examples ---------------------------------------------------------------------------


def test_volume_3000_units() -> None:
    # 3,000 falls in tier 2 (1000, 5000]: 3,000 × 0.80 = 2,400.00, + 50.00 flat = 2,450.00
    result = price_volume(D("3000"), TIERS)
    assert result.amount == D("2450.00")
    assert result.breakdown == (
        TierPiece(
            tier=2,
            first_unit=D("1000"),
            up_to=D("5000"),
            units=D("3000"),
            unit_amount=D("0.80"),
            flat_amount=D("50.00"),
            amount=D("2450.00"),
        ),
    )
    assert result.explanation == "3,000 units: 3,000 × 0.80 + 50.00 flat (volume tier 2)"


def test_graduated_3000_units_and_breakdown() -> None:
    # tier 1: 1,000 × 1.00 = 1,000.00
    # tier 2: (3,000 - 1,000) = 2,000 × 0.80 = 1,600.00, + 50.00 flat = 1,650.00
    # total 1,000.00 + 1,650.00 = 2,650.00; tier 3 is not entered (0 units, no 100.00 flat)
    result = price_graduated(D("3000"), TIERS)
    assert result.amount == D("2650.00")
    assert result.breakdown == (
        TierPiece(
            tier=1,
            first_unit=D("0"),
            up_to=D("1000"),
            units=D("1000"),
            unit_amount=D("1.00"),
            flat_amount=D("0"),
            amount=D("1000.00"),
        ),
        TierPiece(
            tier=2,
            first_unit=D("1000"),
            up_to=D("5000"),
            units=D("2000"),
            unit_amount=D("0.80"),
            flat_amount=D("50.00"),
            amount=D("1650.00"),
        ),
    )
    assert result.explanation == "3,000 units: 1,000 × 1.00 + 2,000 × 0.80 + 50.00 flat"


def test_graduated_6000_units() -> None:
    # tier 1: 1,000 × 1.00 = 1,000.00
    # tier 2: 4,000 × 0.80 = 3,200.00 + 50.00 flat = 3,250.00
    # tier 3: 1,000 × 0.50 = 500.00 + 100.00 flat = 600.00
    # total 1,000 + 3,250 + 600 = 4,850.00
    result = price_graduated(D("6000"), TIERS)
    assert result.amount == D("4850.00")
    assert [piece.units for piece in result.breakdown] == [D("1000"), D("4000"), D("1000")]
    assert [piece.amount for piece in result.breakdown] == [D("1000.00"), D("3250.00"), D("600.00")]
    assert result.breakdown[2].up_to is None
    assert result.breakdown[2].first_unit == D("5000")


def test_tier_bounds_are_inclusive() -> None:
    # 1,000 units lie in tier 1 (0, 1000]: volume 1,000 × 1.00 = 1,000.00, no tier 2 flat
    assert price_volume(D("1000"), TIERS).amount == D("1000.00")
    assert price_graduated(D("1000"), TIERS).amount == D("1000.00")
    # 1,000.5 enters tier 2: graduated 1,000.00 + 0.5 × 0.80 + 50.00 = 1,050.40
    assert price_graduated(D("1000.5"), TIERS).amount == D("1050.40")
    # volume: 1,000.5 × 0.80 + 50.00 = 800.40 + 50.00 = 850.40
    assert price_volume(D("1000.5"), TIERS).amount == D("850.40")


def test_package_1001_units() -> None:
    # ceil(1,001 / 1,000) = 2 packages × 5 = 10
    result = price_package(D("1001"), D("1000"), D("5"))
    assert result.amount == D("10")
    assert result.breakdown == ()
    assert result.explanation == "1,001 units: 2 packages of 1,000 × 5.00"
    # exactly one full package: ceil(1,000 / 1,000) = 1 × 5 = 5
    assert price_package(D("1000"), D("1000"), D("5")).amount == D("5")


def test_per_unit_tokens_then_quantize_usd() -> None:
    # 1,234,567 × 0.000002 = 2.469134 (exact, unrounded) -> USD half-up 2.47
    result = price_per_unit(D("1234567"), D("0.000002"))
    assert result.amount == D("2.469134")
    assert quantize_minor(result.amount, "USD") == D("2.47")
    assert str(quantize_minor(result.amount, "USD")) == "2.47"
    assert result.explanation == "1,234,567 units × 0.000002"


def test_per_unit_twelve_decimal_places_is_exact() -> None:
    # 123,456,789.123 × 0.000000000001 = 0.000123456789123 (no context rounding)
    assert price_per_unit(D("123456789.123"), D("0.000000000001")).amount == D("0.000123456789123")


def test_prorate_17_of_31_days() -> None:
    # 31.00 × 17 / 31 = 527 / 31 = 17.00
    assert prorate(D("31.00"), 17, 31) == D("17")
    assert quantize_minor(prorate(D("31.00"), 17, 31), "USD") == D("17.00")


def test_prorate_full_period_and_rounding() -> None:
    assert prorate(D("9.99"), 30, 30) == D("9.99")
    # 10.00 × 1 / 3 = 3.333… -> USD 3.33
    assert quantize_minor(prorate(D("10.00"), 1, 3), "USD") == D("3.33")


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (D("2.469134"), "USD", "2.47"),
        (D("2.465"), "USD", "2.47"),  # half-up, not banker's (2.46)
        (D("2.475"), "EUR", "2.48"),
        (D("1234.5"), "JPY", "1235"),  # JPY has no minor unit; half-up
        (D("1234.4999"), "JPY", "1234"),
        (D("1.2345"), "KWD", "1.235"),  # KWD has 3 decimals (fils); half-up
        (D("1.2344"), "KWD", "1.234"),
        (D("0.005"), "XYZ", "0.01"),  # unknown currency -> 2 decimals
        (D("-0.005"), "USD", "-0.01"),  # half away from zero
        (D("7"), "usd", "7.00"),
    ],
)
def test_quantize_minor(amount: Decimal, currency: str, expected: str) -> None:
    assert str(quantize_minor(amount, currency)) == expected


def test_currency_exponents() -> None:
    assert CURRENCY_EXPONENTS["JPY"] == 0
    assert currency_exponent("KWD") == 3
    assert currency_exponent("USD") == 2
    assert currency_exponent("ZZZ") == 2


def test_zero_quantity_enters_no_tier() -> None:
    for result in (
        price_graduated(D("0"), TIERS),
        price_volume(D("0"), TIERS),
        price_per_unit(D("0"), D("1.5")),
        price_package(D("0"), D("10"), D("5")),
    ):
        assert result.amount == 0
        assert result.breakdown == ()
    # a tier with a flat amount on the first tier is still not charged at zero quantity
    flat_first = (Tier(up_to=D("10"), unit_amount=D("0"), flat_amount=D("9")), Tier(None, D("1")))
    assert price_graduated(D("0"), flat_first).amount == 0
    assert price_volume(D("0"), flat_first).amount == 0


def test_negative_quantity_is_charged_as_zero() -> None:
    # Net usage below zero (a meter with allow_negative whose corrections outweigh usage) charges nothing,
    # in every usage model: no tier entered (no flat amount), no package started, never a negative amount.
    for result in (
        price_graduated(D("-1"), TIERS),
        price_volume(D("-1"), TIERS),
        price_per_unit(D("-0.1"), D("1")),
        price_package(D("-5"), D("1"), D("1")),
        price_graduated(D("-999999999999999999999999"), TIERS),
    ):
        assert (result.amount, result.breakdown) == (D(0), ())
    assert price_per_unit(D("-5"), D("2")).explanation == "-5 units: usage below zero, nothing to charge"
    # the price itself is still checked, whatever the quantity
    with pytest.raises(PricingError):
        price_package(D("-5"), D("0"), D("1"))
    with pytest.raises(PricingError) as excinfo:
        price_per_unit(D("NaN"), D("1"))
    assert excinfo.value.field == "quantity"


def test_floats_rejected() -> None:
    with pytest.raises(PricingError) as excinfo:
        price_per_unit(D("1"), 0.1)  # type: ignore[arg-type]
    assert excinfo.value.field == "unit_amount"
    with pytest.raises(PricingError):
        Tier(up_to=None, unit_amount=0.5)  # type: ignore[arg-type]


def test_package_size_must_be_positive() -> None:
    with pytest.raises(PricingError) as excinfo:
        price_package(D("5"), D("0"), D("1"))
    assert excinfo.value.field == "package_size"


def test_flat_fee() -> None:
    result = price_flat_fee(D("29.00"))
    assert result.amount == D("29.00")
    assert result.breakdown == ()


def test_to_details_is_json_safe() -> None:
    details = price_graduated(D("6000"), TIERS).to_details()
    assert json.loads(json.dumps(details)) == details
    assert details["amount"] == "4850.00"
    assert details["breakdown"][2] == {
        "tier": 3,
        "first_unit": "5000",
        "up_to": None,
        "units": "1000",
        "unit_amount": "0.50",
        "flat_amount": "100.00",
        "amount": "600.00",
    }
    assert isinstance(price_flat_fee(D("1")), PriceResult)


@pytest.mark.parametrize(
    ("tiers", "fragment"),
    [
        ((), "at least one tier"),
        ((Tier(D("10"), D("1")),), "last tier must be unbounded"),
        ((Tier(None, D("1")), Tier(None, D("1"))), "only the last tier"),
        ((Tier(D("10"), D("1")), Tier(D("10"), D("1")), Tier(None, D("1"))), "must be greater than tier 1"),
        ((Tier(D("10"), D("1")), Tier(D("5"), D("1")), Tier(None, D("1"))), "must be greater than tier 1"),
        ((Tier(D("0"), D("1")), Tier(None, D("1"))), "greater than 0"),
        ((Tier(D("10"), D("-1")), Tier(None, D("1"))), "unit amount must not be negative"),
        ((Tier(D("10"), D("1"), D("-5")), Tier(None, D("1"))), "flat amount must not be negative"),
    ],
)
def test_validate_tiers_rejects(tiers: tuple[Tier, ...], fragment: str) -> None:
    with pytest.raises(PricingError) as excinfo:
        validate_tiers(tiers)
    assert excinfo.value.field == "tiers"
    assert fragment in excinfo.value.message


def test_validate_tiers_accepts_single_unbounded_tier() -> None:
    validate_tiers((Tier(None, D("0.5")),))
    validate_tiers(TIERS)


def test_prorate_rejects_bad_days() -> None:
    with pytest.raises(PricingError):
        prorate(D("10"), 0, 30)
    with pytest.raises(PricingError):
        prorate(D("10"), 31, 30)
    with pytest.raises(PricingError):
        prorate(D("10"), 1, 0)


# --- properties --------------------------------------------------------------------------------
# Decimals are built from integers (scaled by a power of ten), never from floats.


def scaled(low: int, high: int, places: int) -> st.SearchStrategy[Decimal]:
    return st.integers(low, high).map(lambda n: Decimal(n).scaleb(-places))


quantities = scaled(0, 10_000_000, 3)  # 0 .. 10,000 with 3 decimals
unit_amounts = scaled(0, 10**9, 6)  # 0 .. 1,000 with 6 decimals
flat_amounts = scaled(0, 100_000, 2)  # 0 .. 1,000.00


@st.composite
def tier_tables(draw: st.DrawFn, max_bounded: int = 4) -> tuple[Tier, ...]:
    bounds = sorted(draw(st.lists(st.integers(1, 10_000_000), max_size=max_bounded, unique=True)))
    ups: list[Decimal | None] = [Decimal(b).scaleb(-3) for b in bounds]
    ups.append(None)
    return tuple(Tier(up_to=up, unit_amount=draw(unit_amounts), flat_amount=draw(flat_amounts)) for up in ups)


@FAST
@given(quantity=quantities, tiers=tier_tables())
def test_graduated_equals_sum_of_pieces(quantity: Decimal, tiers: tuple[Tier, ...]) -> None:
    result = price_graduated(quantity, tiers)
    assert result.amount == sum((piece.amount for piece in result.breakdown), Decimal(0))
    assert sum((piece.units for piece in result.breakdown), Decimal(0)) == quantity
    for piece in result.breakdown:
        assert piece.units > 0  # only entered tiers appear
        assert piece.amount == piece.units * piece.unit_amount + piece.flat_amount
        if piece.up_to is not None:
            assert piece.first_unit + piece.units <= piece.up_to
    assert [piece.tier for piece in result.breakdown] == list(range(1, len(result.breakdown) + 1))


@FAST
@given(quantity=quantities, tiers=tier_tables())
def test_amounts_never_negative(quantity: Decimal, tiers: tuple[Tier, ...]) -> None:
    assert price_graduated(quantity, tiers).amount >= 0
    assert price_volume(quantity, tiers).amount >= 0
    assert price_per_unit(quantity, tiers[0].unit_amount).amount >= 0


@FAST
@given(
    negative=scaled(-(10**32), -1, 12),
    unit=unit_amounts,
    size=st.integers(1, 10_000).map(Decimal),
    package_amount=flat_amounts,
    tiers=tier_tables(),
)
def test_negative_quantity_prices_like_zero(
    negative: Decimal, unit: Decimal, size: Decimal, package_amount: Decimal, tiers: tuple[Tier, ...]
) -> None:
    # Any net usage below zero (down to -10^20, the largest single property, and beyond for sums) bills
    # exactly what zero bills in every usage model: 0, no breakdown; never negative, never an error.
    models = (
        ("per_unit", {"unit_amount": unit}),
        ("package", {"package_size": size, "package_amount": package_amount}),
        ("tiered", {"tier_mode": "graduated", "tiers": tiers}),
        ("tiered", {"tier_mode": "volume", "tiers": tiers}),
    )
    for model, fields in models:
        below = price_model(model).price(negative, fields)
        zero = price_model(model).price(Decimal(0), fields)
        assert (below.amount, below.breakdown) == (zero.amount, zero.breakdown) == (Decimal(0), ())
        assert "below zero" in below.explanation


@FAST
@given(quantity=quantities, unit=unit_amounts, flat=flat_amounts)
def test_volume_equals_graduated_with_one_tier(quantity: Decimal, unit: Decimal, flat: Decimal) -> None:
    tiers = (Tier(up_to=None, unit_amount=unit, flat_amount=flat),)
    expected = quantity * unit + flat if quantity > 0 else Decimal(0)
    assert price_volume(quantity, tiers).amount == price_graduated(quantity, tiers).amount == expected


@FAST
@given(quantity=quantities, tiers=tier_tables())
def test_volume_charges_the_tier_the_total_falls_in(quantity: Decimal, tiers: tuple[Tier, ...]) -> None:
    result = price_volume(quantity, tiers)
    if quantity == 0:
        assert result.breakdown == ()
        return
    (piece,) = result.breakdown
    assert piece.first_unit < quantity
    assert piece.up_to is None or quantity <= piece.up_to
    assert result.amount == quantity * piece.unit_amount + piece.flat_amount


@FAST
@given(
    quantity=scaled(0, 10**9, 2),
    size=st.integers(1, 10_000).map(Decimal),
    package_amount=flat_amounts,
)
def test_package_is_ceil_rule(quantity: Decimal, size: Decimal, package_amount: Decimal) -> None:
    # integer ceil without floats: ceil(q / s) = -(-q // s) on exact scaled integers
    scaled_quantity = int(quantity * 100)
    scaled_size = int(size * 100)
    packages = -(-scaled_quantity // scaled_size)
    assert price_package(quantity, size, package_amount).amount == packages * package_amount


@FAST
@given(q1=quantities, q2=quantities, tiers=tier_tables())
def test_graduated_monotone(q1: Decimal, q2: Decimal, tiers: tuple[Tier, ...]) -> None:
    low, high = sorted((q1, q2))
    assert price_graduated(low, tiers).amount <= price_graduated(high, tiers).amount


@FAST
@given(
    amount=scaled(0, 10**12, 2),
    days=st.integers(1, 366).flatmap(lambda period: st.tuples(st.integers(1, period), st.just(period))),
)
def test_prorate_bounded(amount: Decimal, days: tuple[int, int]) -> None:
    part, period = days
    result = prorate(amount, part, period)
    assert Decimal(0) <= result <= amount
    if part == period:
        assert result == amount


@FAST
@given(bounds=st.lists(st.integers(1, 1000), min_size=2, max_size=5))
def test_validate_tiers_rejects_non_rising_bounds(bounds: list[int]) -> None:
    rising = all(b > a for a, b in pairwise(bounds))
    tiers = [Tier(up_to=Decimal(b), unit_amount=Decimal(1)) for b in bounds] + [Tier(None, Decimal(1))]
    if rising:
        validate_tiers(tiers)
    else:
        with pytest.raises(PricingError):
            validate_tiers(tiers)


@FAST
@given(tiers=tier_tables(), last_bound=st.integers(1, 10**9))
def test_validate_tiers_rejects_bounded_last_tier(tiers: tuple[Tier, ...], last_bound: int) -> None:
    bounded = (*tiers[:-1], Tier(up_to=Decimal(last_bound), unit_amount=tiers[-1].unit_amount))
    with pytest.raises(PricingError) as excinfo:
        validate_tiers(bounded)
    assert excinfo.value.field == "tiers"
