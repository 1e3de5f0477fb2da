"""The price-model table (catalog/price_models.py): one row per model, read by every place that knows models.

Pure: no database. The worked examples are DESIGN.md's tier table (tests/catalog/test_pricing.py).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.price_models import PRICE_COLUMNS, PRICE_FIELDS, PRICE_MODELS, price_model, tiers_text
from catalog.pricing import PricingError, Tier
from catalog.validation import FieldErrors

D = Decimal
TIERS = (
    Tier(up_to=D("1000"), unit_amount=D("1.00")),
    Tier(up_to=D("5000"), unit_amount=D("0.80"), flat_amount=D("50.00")),
    Tier(up_to=None, unit_amount=D("0.50"), flat_amount=D("100.00")),
)


def test_each_model_prices_with_its_pure_function() -> None:
    assert price_model("flat_fee").price(D("0"), {"amount": D("29.00")}).amount == D("29.00")
    assert price_model("per_unit").price(D("3"), {"unit_amount": D("0.25")}).amount == D("0.75")
    # 1,001 units in packages of 1,000 at 5: ceil(1001 / 1000) = 2 packages = 10
    assert price_model("package").price(D("1001"), {"package_size": D("1000"), "package_amount": D("5")}).amount == 10
    # graduated 3,000: 1,000 x 1.00 + (2,000 x 0.80 + 50) = 2,650; volume: 3,000 x 0.80 + 50 = 2,450
    tiered = price_model("tiered")
    assert tiered.price(D("3000"), {"tier_mode": "graduated", "tiers": TIERS}).amount == D("2650.00")
    assert tiered.price(D("3000"), {"tier_mode": "volume", "tiers": TIERS}).amount == D("2450.00")


@pytest.mark.parametrize(
    ("model", "terms", "field"),
    [
        ("bogus", {}, "model"),
        ("tiered", {"tier_mode": "stairs", "tiers": TIERS}, "tier_mode"),
        ("per_unit", {}, "unit_amount"),
        ("flat_fee", {}, "amount"),
        ("package", {"package_size": D("10")}, "package_amount"),
        ("tiered", {"tier_mode": "volume"}, "tiers"),
    ],
)
def test_a_missing_or_unknown_value_names_its_field(model: str, terms: dict, field: str) -> None:
    with pytest.raises(PricingError) as excinfo:
        price_model(model).price(D("1"), terms)
    assert excinfo.value.field == field


def test_the_table_is_whole() -> None:
    """Every model's fields are known values; usage models are the ones priced on a meter's quantity."""
    assert list(PRICE_MODELS) == ["flat_fee", "per_unit", "package", "tiered"]
    assert [key for key, model in PRICE_MODELS.items() if model.usage] == ["per_unit", "package", "tiered"]
    for model in PRICE_MODELS.values():
        assert set(model.fields) <= set(PRICE_FIELDS), model.key
    assert PRICE_COLUMNS == ("amount", "unit_amount", "package_size", "package_amount", "tier_mode")


def test_validators_parse_each_models_values_and_name_bad_fields() -> None:
    errors = FieldErrors()
    assert price_model("package").parse({"package_size": "1000", "package_amount": "5"}, "prices[0]", errors, False) == {
        "package_size": D("1000"), "package_amount": D("5")}
    price_model("package").parse({"package_size": "0"}, "prices[1]", errors, False)
    price_model("tiered").parse({"tier_mode": "graduated"}, "prices[2]", errors, False)
    assert errors.items == {
        "prices[1].package_size": ["Must be greater than 0."],
        "prices[1].package_amount": ["This field is required."],
        "prices[2].tiers": ["A tiered price needs at least one tier."],
    }
    # a draft edited row by row (the admin) may lack its tiers: they are "not given", not an error
    partial = FieldErrors()
    assert price_model("tiered").parse({"tier_mode": "volume"}, "", partial, True) == {"tier_mode": "volume", "tiers": None}
    assert partial.items == {}


def test_summaries_and_invoice_line_extras() -> None:
    assert price_model("package").summary({"package_size": D("1000"), "package_amount": D("5")}, "USD", " of tokens") == (
        "$5.00 per 1,000 units of tokens")
    assert tiers_text(TIERS, "USD") == (
        "1–1,000: $1.00/unit; 1,001–5,000: $0.80/unit + $50.00; 5,001 and up: $0.50/unit + $100.00")
    assert price_model("per_unit").line_unit_amount({"unit_amount": D("0.25")}) == D("0.25")
    assert price_model("flat_fee").line_unit_amount({"amount": D("9")}) is None
    free_first = (Tier(up_to=D("5000"), unit_amount=D("0")), Tier(up_to=None, unit_amount=D("0.01")))
    assert price_model("tiered").included_units({"tier_mode": "graduated", "tiers": free_first}) == D("5000")
    assert price_model("tiered").included_units({"tier_mode": "volume", "tiers": free_first}) is None
