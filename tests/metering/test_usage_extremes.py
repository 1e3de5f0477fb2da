"""Extreme usage. Negative values: refused unless the meter allows them; when allowed, they never bill below
zero nor lift a limit. The largest values: the upcoming invoice still answers.

Before: a sum meter accepted ``-999999999999999999999999``, after which the upcoming invoice answered 500
and the billing run failed forever; one ``-1000000`` event lifted an entitlement limit.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from catalog.models import Price
from invoicing.services import billing_run_execute
from metering.models import Event
from metering.selectors import numeric_fields_forget
from tests.factories.catalog import (
    EntitlementFactory,
    FeatureFactory,
    PlanVersionFactory,
    PriceFactory,
    TierFactory,
)
from tests.factories.customers import CustomerFactory, TaxRateFactory
from tests.factories.metering import MeterFactory
from tests.invoicing.helpers import invoices_of, start

pytestmark = pytest.mark.django_db

JAN = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_numeric_fields():
    numeric_fields_forget()
    yield
    numeric_fields_forget()


def send(api, event_id, value, *, name="api_call", at="2026-01-15T10:00:00Z"):
    body = {
        "event_id": event_id,
        "customer": "acme",
        "event_name": name,
        "timestamp": at,
        "properties": {"tokens": value},
    }
    return api.post("/api/v1/events", data=json.dumps(body), content_type="application/json")


@pytest.mark.parametrize("value", [-1, "-1", "-0.5", "-0", -0.5, "-99999999999999999999"])
def test_negative_values_are_refused_by_default(api, value):
    MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    response = send(api, "e1", value)
    assert response.status_code == 400
    assert "must not be negative" in response.json()["properties"][0]
    assert not Event.objects.exists()


def test_the_reported_value_is_refused(api):
    MeterFactory(event_name="api_call", aggregation="sum", field="tokens")
    # 24 digits: outside the grammar whatever the sign
    response = send(api, "e1", "-999999999999999999999999")
    assert response.status_code == 400 and "at most 20 digits" in response.json()["properties"][0]


def test_a_meter_with_allow_negative_accepts_corrections(api):
    MeterFactory(event_name="api_call", aggregation="sum", field="tokens", allow_negative=True)
    assert send(api, "e1", 10).status_code == 201
    assert send(api, "e2", "-4.5").status_code == 201
    assert send(api, "e3", -0.5).status_code == 201


def test_negatives_need_every_meter_on_the_property_to_allow_them(api):
    MeterFactory(event_name="api_call", aggregation="sum", field="tokens", allow_negative=True)
    MeterFactory(event_name="api_call", aggregation="max", field="tokens")  # does not allow them
    assert send(api, "e1", -1).status_code == 400
    assert send(api, "e2", 1).status_code == 201


@pytest.fixture
def plan():
    """$10/month fee; tokens at $0.01 per unit, and a graduated table (first 100 free, then $1 + $5 flat)."""
    version = PlanVersionFactory(published=True, number=1)
    meter = MeterFactory(
        key="tokens", name="Tokens", event_name="api_call", aggregation="sum", field="tokens", allow_negative=True
    )
    PriceFactory(plan_version=version, name="Fee", amount=Decimal("10.00"), position=0)
    PriceFactory(plan_version=version, per_unit=True, name="Tokens", meter=meter, position=1)
    tiered = PriceFactory(
        plan_version=version,
        name="Tokens tiered",
        model=Price.Model.TIERED,
        tier_mode=Price.TierMode.GRADUATED,
        timing=Price.Timing.IN_ARREARS,
        amount=None,
        meter=meter,
        position=2,
    )
    TierFactory(price=tiered, position=0, up_to=Decimal(100), unit_amount=Decimal(0))
    TierFactory(price=tiered, position=1, up_to=None, unit_amount=Decimal(1), flat_amount=Decimal(5))
    customer = CustomerFactory(external_id="acme")
    subscription = start(customer, version.plan, JAN)
    return version, meter, subscription


def test_net_negative_usage_bills_zero_and_the_upcoming_invoice_answers(api, plan):
    assert send(api, "e1", 30).status_code == 201
    assert send(api, "e2", "-99999999999999999999").status_code == 201  # a correction far beyond the usage
    usage = api.get("/api/v1/customers/acme/usage?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z").json()
    assert usage["meters"] == [{"meter": "tokens", "value": "-99999999999999999969"}]  # 30 - 99999999999999999999
    response = api.get("/api/v1/customers/acme/upcoming_invoice")
    assert response.status_code == 200
    body = response.json()
    # usage lines for January: below zero -> 0.00 each (never negative); February's fee $10.00 in advance
    assert [(line["kind"], line["amount"]) for line in body["lines"]] == [
        ("usage", "0.00"),
        ("usage", "0.00"),
        ("fixed", "10.00"),
    ]
    assert body["subtotal"] == "10.00"


def test_net_negative_usage_does_not_stop_the_billing_run(api, plan):
    _, _, subscription = plan
    assert send(api, "e1", 250).status_code == 201
    assert send(api, "e2", -400).status_code == 201
    billing_run_execute(now=datetime(2026, 2, 1, tzinfo=UTC))
    feb = invoices_of(subscription)[1]
    lines = sorted(feb.lines.all(), key=lambda line: line.position)
    # -150 units: both usage prices 0.00; the new period's fee 10.00
    assert [(line.kind, line.quantity, line.amount) for line in lines] == [
        ("usage", Decimal(-150), Decimal("0.00")),
        ("usage", Decimal(-150), Decimal("0.00")),
        ("fixed", Decimal(1), Decimal("10.00")),
    ]
    assert feb.subtotal == Decimal("10.00")


def test_a_negative_event_never_lifts_an_entitlement_limit(api, plan):
    version, meter, _ = plan
    feature = FeatureFactory(key="tokens", type="metered", meter=meter)
    EntitlementFactory(plan_version=version, feature=feature, limit=Decimal(5), reset="never")
    assert send(api, "e1", 3, at=(datetime.now(UTC) - timedelta(days=1)).isoformat()).status_code == 201
    assert send(api, "e2", -1000000, at=(datetime.now(UTC) - timedelta(hours=1)).isoformat()).status_code == 201
    state = api.get("/api/v1/customers/acme/entitlements/tokens").json()
    # 3 - 1,000,000 < 0 counts as 0: remaining is the limit, never more
    assert (state["limit"], state["usage"], state["remaining"], state["allowed"]) == ("5", "0", "5", True)


def test_without_allow_negative_the_limit_holds(api):
    version = PlanVersionFactory(published=True, number=1)
    meter = MeterFactory(key="tokens", event_name="api_call", aggregation="sum", field="tokens")
    feature = FeatureFactory(key="tokens", type="metered", meter=meter)
    EntitlementFactory(plan_version=version, feature=feature, limit=Decimal(5), reset="never")
    start(CustomerFactory(external_id="acme"), version.plan, JAN)
    now = datetime.now(UTC)
    assert send(api, "e1", 5, at=(now - timedelta(hours=2)).isoformat()).status_code == 201
    assert send(api, "e2", -1000000, at=(now - timedelta(hours=1)).isoformat()).status_code == 400
    state = api.get("/api/v1/customers/acme/entitlements/tokens").json()
    assert (state["usage"], state["remaining"], state["allowed"]) == ("5", "0", False)


def test_the_largest_usage_still_previews(api):
    # 50 events of the largest property value (20 + 12 digits) at a 16 + 12-digit unit price: far beyond any
    # money column, but the preview is computed and shown, never a 500 (formatting used the 28-digit context).
    version = PlanVersionFactory(published=True, number=1)
    meter = MeterFactory(key="tokens", event_name="api_call", aggregation="sum", field="tokens")
    PriceFactory(
        plan_version=version, per_unit=True, name="Tokens", meter=meter, unit_amount=Decimal("999999.999999999999")
    )
    customer = CustomerFactory(external_id="acme")
    customer.tax_rates.add(TaxRateFactory(code="vat-20", percentage=Decimal("20")))
    start(customer, version.plan, JAN)
    for i in range(50):
        assert send(api, f"e{i}", "99999999999999999999.999999999999").status_code == 201
    response = api.get("/api/v1/customers/acme/upcoming_invoice")
    assert response.status_code == 200
    (line,) = response.json()["lines"]
    # 50 x 99999999999999999999.999999999999 = 4999999999999999999999.99999999995
    assert line["quantity"] == "4999999999999999999999.99999999995"
    # (5e21 - 5e-11) x (1e6 - 1e-12) = 5e27 - 5e9 - 5e-5 + 5e-23 = 4999999999999999994999999999.99995000...005,
    # rounded half-up to cents
    assert line["amount"] == "4999999999999999995000000000.00"
