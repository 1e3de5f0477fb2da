"""The worked examples of the issue "Customers in their own timezone, weekly and quarterly plans, negotiated prices
for one customer", through subscription_start, the billing run and the API."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.models import Plan, Price
from catalog.overrides import price_quote_overridden
from customers.models import Subscription
from customers.services import customer_update
from invoicing.models import InvoiceLine
from invoicing.services import billing_run_execute, subscription_price_overrides_update, subscription_start
from tests.factories.catalog import PlanFactory, PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory, TaxRateFactory
from tests.factories.invoicing import events_create
from tests.factories.metering import MeterFactory

from .helpers import invoices_of, start, utc

pytestmark = pytest.mark.django_db

LA = "America/Los_Angeles"


def _flat_plan(amount: str, interval: str = Plan.Interval.MONTH):
    version = PlanVersionFactory(published=True, number=1, plan=PlanFactory(interval=interval))
    PriceFactory(plan_version=version, name="Subscription", amount=Decimal(amount))
    return version.plan


def test_los_angeles_calendar_start_is_22_of_28_local_days_with_20_percent_tax():
    plan = _flat_plan("50.00")
    customer = CustomerFactory(timezone=LA)
    customer.tax_rates.add(TaxRateFactory(code="vat-20", percentage=Decimal("20")))
    # 2023-02-08 00:00 UTC is Feb 7 16:00 in Los Angeles: local Feb 7 -> Mar 1 = 22 of February's 28 days.
    sub = start(customer, plan, utc(2023, 2, 8))
    [first] = invoices_of(sub)
    [line] = first.lines.all()
    # 50.00 x 22 / 28 = 39.2857 -> 39.29; tax 20% of 39.29 = 7.858 -> 7.86; total 47.15.
    assert line.kind == InvoiceLine.Kind.PRORATION and line.details["proration"]["text"] == "22 of 28 days"
    assert (first.subtotal, first.tax, first.total) == (Decimal("39.29"), Decimal("7.86"), Decimal("47.15"))
    # The next boundary is local midnight Mar 1 = 08:00 UTC (PST), not 00:00 UTC.
    assert (sub.current_period_start, sub.current_period_end) == (utc(2023, 2, 8), utc(2023, 3, 1, 8))
    # A run at 00:00 UTC bills nothing yet: the boundary is due at its UTC instant.
    assert billing_run_execute(now=utc(2023, 3, 1)).invoices_created == 0
    assert billing_run_execute(now=utc(2023, 3, 1, 8)).invoices_created == 1
    march = invoices_of(sub)[1]
    assert march.billing_boundary_at == utc(2023, 3, 1, 8)
    # March in full (50.00 + 10.00 tax = 60.00); it ends at local Apr 1 00:00 = 07:00 UTC (PDT since Mar 12).
    assert march.total == Decimal("60.00")
    sub.refresh_from_db()
    assert (sub.current_period_start, sub.current_period_end) == (utc(2023, 3, 1, 8), utc(2023, 4, 1, 7))


def test_weekly_calendar_from_wednesday_then_mondays_and_anniversary_every_wednesday():
    plan = _flat_plan("7.00", Plan.Interval.WEEK)
    cal = start(CustomerFactory(), plan, utc(2023, 2, 1))  # Wednesday
    # Wed Feb 1 -> Mon Feb 6: 5 of 7 days, 7.00 x 5 / 7 = 5.00.
    assert invoices_of(cal)[0].total == Decimal("5.00")
    ann = start(CustomerFactory(), plan, utc(2023, 2, 1), billing=Subscription.Billing.ANNIVERSARY)
    assert invoices_of(ann)[0].total == Decimal("7.00")
    billing_run_execute(now=utc(2023, 2, 16))
    # Calendar: billed again Monday Feb 6 and Monday Feb 13, 7.00 each.
    assert [(i.billing_boundary_at, i.total) for i in invoices_of(cal)] == [
        (utc(2023, 2, 1), Decimal("5.00")),
        (utc(2023, 2, 6), Decimal("7.00")),
        (utc(2023, 2, 13), Decimal("7.00")),
    ]
    # Anniversary: every Wednesday, Feb 8 and Feb 15.
    assert [i.billing_boundary_at for i in invoices_of(ann)] == [utc(2023, 2, 1), utc(2023, 2, 8), utc(2023, 2, 15)]


def test_quarterly_calendar_from_may_20_is_42_of_91_days_then_the_full_quarter():
    plan = _flat_plan("91.00", Plan.Interval.QUARTER)
    sub = start(CustomerFactory(), plan, utc(2024, 5, 20))
    # May 20 -> Jul 1: 12 + 30 = 42 of Q2's 91 days (30 + 31 + 30): 91.00 x 42 / 91 = 42.00.
    assert invoices_of(sub)[0].total == Decimal("42.00")
    assert sub.current_period_end == utc(2024, 7, 1)
    billing_run_execute(now=utc(2024, 7, 1))
    q3 = invoices_of(sub)[1]
    assert q3.total == Decimal("91.00")
    assert (q3.lines.get().period_start, q3.lines.get().period_end) == (utc(2024, 7, 1), utc(2024, 10, 1))


def _calls_plan():
    """10.00 a month in advance + 0.01 per call in arrears (per unit)."""
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, name="Platform", amount=Decimal("10.00"), position=0)
    meter = MeterFactory(key=f"calls-{version.plan.key}", name="Calls", event_name=f"call_{version.plan.key}")
    PriceFactory(
        plan_version=version,
        name="Calls",
        model=Price.Model.PER_UNIT,
        timing=Price.Timing.IN_ARREARS,
        amount=None,
        unit_amount=Decimal("0.01"),
        meter=meter,
        position=1,
    )
    return version, meter


def test_a_negotiated_unit_amount_bills_8_where_the_plan_bills_10():
    version, meter = _calls_plan()
    deal, plain = CustomerFactory(external_id="deal"), CustomerFactory(external_id="plain")
    deal_sub = subscription_start(
        customer=deal,
        plan=version.plan,
        start_at=utc(2026, 1, 1),
        billing="calendar",
        pinned_version=None,
        now=utc(2026, 1, 1),
        price_overrides=[{"price": "Calls", "unit_amount": "0.008"}],
    )
    plain_sub = start(plain, version.plan, utc(2026, 1, 1))
    for who in ("deal", "plain"):
        events_create(customer_external_id=who, event_name=meter.event_name, count=1000, start=utc(2026, 1, 5))
    billing_run_execute(now=utc(2026, 2, 1))
    deal_calls = invoices_of(deal_sub)[1].lines.get(kind=InvoiceLine.Kind.USAGE)
    plain_calls = invoices_of(plain_sub)[1].lines.get(kind=InvoiceLine.Kind.USAGE)
    # 1,000 calls x 0.008 = 8.00 with the override; x 0.01 = 10.00 on the plan's price.
    assert deal_calls.amount == Decimal("8.00") and plain_calls.amount == Decimal("10.00")
    assert deal_calls.details["override"] == "override: unit_amount 0.008 (plan: 0.01)"
    assert deal_calls.unit_amount == Decimal("0.008")
    assert "override" not in plain_calls.details
    # The backtest's function gives the same amount from the stored overrides.
    calls = version.prices.get(name="Calls")
    result, text = price_quote_overridden(calls, Decimal(1000), deal_sub.price_overrides)
    assert result.amount == Decimal("8.000") and text == deal_calls.details["override"]


def test_a_patch_of_the_overrides_applies_from_the_next_period():
    version, meter = _calls_plan()
    customer = CustomerFactory(external_id="later")
    sub = start(customer, version.plan, utc(2026, 1, 1))
    events_create(customer_external_id="later", event_name=meter.event_name, count=1000, start=utc(2026, 1, 5))
    subscription_price_overrides_update(
        subscription=sub,
        price_overrides=[{"price": "Calls", "unit_amount": "0.008"}, {"price": "Platform", "amount": "9"}],
    )
    sub.refresh_from_db()
    assert sub.price_overrides == [] and sub.pending_price_overrides[0]["unit_amount"] == "0.008"
    billing_run_execute(now=utc(2026, 2, 1))
    feb = invoices_of(sub)[1]
    # January's calls at the plan's 0.01 (10.00); February's fee with the new override, 9.00.
    amounts = {line.description.split(" — ")[0]: line.amount for line in feb.lines.all()}
    assert amounts == {"Calls": Decimal("10.00"), "Platform": Decimal("9.00")}
    sub.refresh_from_db()
    assert sub.pending_price_overrides is None and [o["price"] for o in sub.price_overrides] == ["Calls", "Platform"]
    events_create(
        customer_external_id="later", event_name=meter.event_name, count=1000, start=utc(2026, 2, 5), prefix="f"
    )
    billing_run_execute(now=utc(2026, 3, 1))
    # February's 1,000 calls at 0.008 = 8.00; March's fee 9.00.
    assert sorted(line.amount for line in invoices_of(sub)[2].lines.all()) == [Decimal("8.00"), Decimal("9.00")]


def test_overrides_follow_a_new_version_that_keeps_the_price_name_and_drop_when_it_is_gone():
    version, meter = _calls_plan()
    customer = CustomerFactory(external_id="v2")
    sub = subscription_start(
        customer=customer,
        plan=version.plan,
        start_at=utc(2026, 1, 1),
        billing="calendar",
        pinned_version=None,
        now=utc(2026, 1, 1),
        price_overrides=[{"price": "Platform", "amount": "8"}],
    )
    v2 = PlanVersionFactory(plan=version.plan, published=True, number=2, effective_from=utc(2026, 2, 1))
    PriceFactory(plan_version=v2, name="Platform", amount=Decimal("12.00"))
    v3 = PlanVersionFactory(plan=version.plan, published=True, number=3, effective_from=utc(2026, 3, 1))
    PriceFactory(plan_version=v3, name="Base", amount=Decimal("12.00"))
    billing_run_execute(now=utc(2026, 3, 1))
    jan, feb, mar = invoices_of(sub)
    # v2 keeps "Platform": the override's 8.00 instead of 12.00 (January's calls: none, 0.00). v3 has no
    # "Platform": its own "Base" at 12.00.
    assert jan.total == Decimal("8.00") and feb.total == Decimal("8.00") and mar.total == Decimal("12.00")
    assert feb.lines.get(kind=InvoiceLine.Kind.FIXED).details["override"] == "override: amount 8 (plan: 12)"
    assert "override" not in mar.lines.get(kind=InvoiceLine.Kind.FIXED).details


def test_api_timezone_and_overrides_refuse_bad_input_naming_the_field(api):
    version, _ = _calls_plan()
    client = api
    bad = client.post(
        "/api/v1/customers",
        {"external_id": "tz", "name": "T", "currency": "USD", "timezone": "Mars/Base"},
        format="json",
    )
    assert bad.status_code == 400 and "timezone" in bad.json()
    ok = client.post(
        "/api/v1/customers", {"external_id": "tz", "name": "T", "currency": "USD", "timezone": LA}, format="json"
    )
    assert ok.status_code == 201 and ok.json()["timezone"] == LA
    assert client.patch("/api/v1/customers/tz", {"timezone": "Nowhere"}, format="json").status_code == 400
    body = {"customer": "tz", "plan": version.plan.key, "start_at": "2026-01-01T00:00:00Z"}
    cases = [
        ([{"price": "Nope", "unit_amount": "1"}], "price_overrides[0].price"),
        ([{"price": "Calls", "amount": "1"}], "price_overrides[0].amount"),
        ([{"price": "Calls", "unit_amount": "-0.01"}], "price_overrides[0].unit_amount"),
        ([{"price": "Calls", "model": "flat_fee", "unit_amount": "1"}], "price_overrides[0].model"),
        ([{"price": "Calls"}], "price_overrides[0]"),
        ("calls", "price_overrides"),
    ]
    for overrides, field in cases:
        response = client.post("/api/v1/subscriptions", {**body, "price_overrides": overrides}, format="json")
        assert response.status_code == 400 and field in response.json(), (overrides, response.json())
    created = client.post(
        "/api/v1/subscriptions",
        {**body, "price_overrides": [{"price": "Calls", "unit_amount": "0.008"}]},
        format="json",
    )
    assert created.status_code == 201
    assert created.json()["price_overrides"] == [{"price": "Calls", "unit_amount": "0.008"}]
    sub_id = created.json()["id"]
    patched = client.patch(
        f"/api/v1/subscriptions/{sub_id}",
        {"price_overrides": [{"price": "Calls", "unit_amount": "0.007"}]},
        format="json",
    )
    assert patched.status_code == 200
    assert patched.json()["price_overrides"] == [{"price": "Calls", "unit_amount": "0.008"}]
    assert patched.json()["pending_price_overrides"] == [{"price": "Calls", "unit_amount": "0.007"}]
    refused = client.patch(
        f"/api/v1/subscriptions/{sub_id}", {"price_overrides": [{"price": "Calls", "tiers": []}]}, format="json"
    )
    assert refused.status_code == 400 and "price_overrides[0].tiers" in refused.json()


def test_a_timezone_change_applies_from_the_next_period():
    plan = _flat_plan("31.00")
    customer = CustomerFactory()
    sub = start(customer, plan, utc(2023, 2, 1))
    customer_update(customer=customer, data={"timezone": LA})
    sub.refresh_from_db()
    # The period being served keeps its UTC bounds.
    assert sub.current_period_end == utc(2023, 3, 1)
    billing_run_execute(now=utc(2023, 3, 1))
    sub.refresh_from_db()
    # The next one starts where February ended and runs to Los Angeles's April boundary (the 8 hours to its March
    # boundary join it): local Feb 28 -> Apr 1 is at least March's 31 days, so the whole 31.00.
    assert (sub.current_period_start, sub.current_period_end) == (utc(2023, 3, 1), utc(2023, 4, 1, 7))
    assert invoices_of(sub)[1].total == Decimal("31.00")
    billing_run_execute(now=utc(2023, 4, 1, 7))
    sub.refresh_from_db()
    assert (sub.current_period_start, sub.current_period_end) == (utc(2023, 4, 1, 7), utc(2023, 5, 1, 7))
