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
    assert price_model("package").parse(
        {"package_size": "1000", "package_amount": "5"}, "prices[0]", errors, False
    ) == {"package_size": D("1000"), "package_amount": D("5")}
    price_model("package").parse({"package_size": "0"}, "prices[1]", errors, False)
    price_model("tiered").parse({"tier_mode": "graduated"}, "prices[2]", errors, False)
    assert errors.items == {
        "prices[1].package_size": ["Must be greater than 0."],
        "prices[1].package_amount": ["This field is required."],
        "prices[2].tiers": ["A tiered price needs at least one tier."],
    }
    # a draft edited row by row (the admin) may lack its tiers: they are "not given", not an error
    partial = FieldErrors()
    assert price_model("tiered").parse({"tier_mode": "volume"}, "", partial, True) == {
        "tier_mode": "volume",
        "tiers": None,
    }
    assert partial.items == {}


def test_summaries_and_invoice_line_extras() -> None:
    assert price_model("package").summary(
        {"package_size": D("1000"), "package_amount": D("5")}, "USD", " of tokens"
    ) == ("$5.00 per 1,000 units of tokens")
    assert tiers_text(TIERS, "USD") == (
        "1–1,000: $1.00/unit; 1,001–5,000: $0.80/unit + $50.00; 5,001 and up: $0.50/unit + $100.00"
    )
    assert price_model("per_unit").line_unit_amount({"unit_amount": D("0.25")}) == D("0.25")
    assert price_model("flat_fee").line_unit_amount({"amount": D("9")}) is None
    free_first = (Tier(up_to=D("5000"), unit_amount=D("0")), Tier(up_to=None, unit_amount=D("0.01")))
    assert price_model("tiered").included_units({"tier_mode": "graduated", "tiers": free_first}) == D("5000")
    assert price_model("tiered").included_units({"tier_mode": "volume", "tiers": free_first}) is None


@pytest.mark.django_db
def test_a_new_row_is_all_a_new_model_needs(api, monkeypatch):
    """Adding a model is its row (plus the migration of Price.model's choices, which only the admin's form and the
    database's choices list read): the API validates and shows it, publishing checks it, quotes, summaries and
    invoice lines price it. Here a hypothetical "per_block" model (its key fits the column: at most 10
    characters): a started block of 1,000 units at a price."""
    from datetime import UTC, datetime

    from catalog import pricing
    from catalog.display import price_summary
    from catalog.models import Price
    from catalog.price_models import PriceModel
    from catalog.quote import price_quote
    from catalog.validation import decimal_parse, path_join
    from core.money import format_money
    from customers.periods import Period
    from invoicing.services.lines import usage_line
    from tests.factories.catalog import PlanFactory
    from tests.factories.metering import MeterFactory

    row = PriceModel(
        key="per_block",
        label="Per 1,000 units",
        fields=("unit_amount",),
        usage=True,
        parse=lambda data, prefix, errors, partial: {
            "unit_amount": decimal_parse(
                data.get("unit_amount"), path_join(prefix, "unit_amount"), errors, required=True
            )
        },
        price=lambda quantity, t: pricing.price_package(quantity, D(1000), t["unit_amount"]),
        summary=lambda t, currency, meter: f"{format_money(t['unit_amount'], currency)} per 1,000 units{meter}",
    )
    monkeypatch.setitem(PRICE_MODELS, "per_block", row)
    MeterFactory(key="chars", name="Characters")
    PlanFactory(key="voice", currency="USD")
    price = {"name": "Characters", "model": "per_block", "meter": "chars", "unit_amount": "0.30"}
    refused = api.post("/api/v1/plans/voice/versions", {"prices": [{**price, "amount": "1"}]})
    assert refused.status_code == 400
    assert refused.json()["prices[0].amount"] == ["Does not apply to per_block prices."]
    created = api.post("/api/v1/plans/voice/versions", {"prices": [price], "publish": True})
    assert created.status_code == 201, created.json()
    shown = created.json()["prices"][0]
    assert (shown["model"], shown["unit_amount"], shown["timing"], shown["tiers"]) == (
        "per_block",
        "0.30",
        "in_arrears",
        [],
    )
    stored = Price.objects.select_related("meter", "plan_version__plan").get(model="per_block")
    # 2,500 characters: ceil(2500 / 1000) = 3 blocks x 0.30 = 0.90
    assert price_quote(stored, D("2500")).amount == D("0.90")
    assert price_summary(stored, "USD") == "$0.30 per 1,000 units of chars (in arrears)"
    period = Period(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    line = usage_line(price=stored, version=stored.plan_version, period=period, quantity=D("2500"), currency="USD")
    assert (line.amount, line.details["price_model"]) == (D("0.90"), "per_block")
