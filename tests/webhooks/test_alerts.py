"""Usage and spend alerts: levels (pure, with hypothesis), the worked example, the API, run_billing, and the
``alert.triggered`` event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from hypothesis import given
from hypothesis import strategies as st

from catalog.models import Price
from core.models import OutboxEvent
from metering.models import Event, Meter
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.factories.metering import MeterFactory
from tests.invoicing.helpers import start
from webhooks.alerts import alerts_evaluate
from webhooks.levels import MAX_LEVELS, levels_reached
from webhooks.models import AlertTrigger

D = Decimal
JAN1 = datetime(2026, 1, 1, tzinfo=UTC)


# --- levels, pure ------------------------------------------------------------------------------------------


def test_levels_of_the_worked_example():
    fixed, every = [D(1000), D(3000)], D(2500)
    assert levels_reached(D(999), fixed=fixed, recurring=every) == []
    # 3,000 reaches both fixed thresholds; the recurring one starts above the highest fixed: 5,500, 8,000...
    assert levels_reached(D(3000), fixed=fixed, recurring=every) == [D(1000), D(3000)]
    assert levels_reached(D(5500), fixed=fixed, recurring=every, exclude=frozenset({D(1000), D(3000)})) == [D(5500)]
    assert levels_reached(D(8000), fixed=fixed, recurring=every) == [D(1000), D(3000), D(5500), D(8000)]
    # With no fixed threshold a recurring one triggers at each multiple of itself.
    assert levels_reached(D(7), fixed=[], recurring=D(2)) == [D(2), D(4), D(6)]


@given(
    value=st.decimals(min_value=0, max_value=10**6, places=2),
    fixed=st.lists(st.decimals(min_value="0.01", max_value=10**6, places=2), max_size=5, unique=True),
    every=st.one_of(st.none(), st.decimals(min_value=1, max_value=10**5, places=2)),
    split=st.decimals(min_value=0, max_value=1, places=2),
)
def test_levels_found_in_two_steps_are_those_found_in_one(value, fixed, every, split):
    """Evaluating at an intermediate value and then at the final one triggers each level exactly once, the same
    levels as one evaluation at the final value (when the cap is not hit)."""
    once = levels_reached(value, fixed=fixed, recurring=every)
    if len(once) >= MAX_LEVELS:
        return
    first = levels_reached(value * split, fixed=fixed, recurring=every)
    second = levels_reached(value, fixed=fixed, recurring=every, exclude=frozenset(first))
    assert sorted(first + second) == once
    assert all(level <= value for level in once) and once == sorted(set(once))


# --- the worked example through the API and billing runs ------------------------------------------------------


def _units(customer, units: int, at: datetime, event_id: str) -> None:
    Event.objects.create(
        customer_external_id=customer.external_id,
        event_id=event_id,
        event_name="tokens",
        timestamp=at,
        properties={"units": units},
    )


@pytest.fixture
def metered(db):
    meter = MeterFactory(key="tokens", event_name="tokens", aggregation=Meter.Aggregation.SUM, field="units")
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, name="Platform", amount=D("20.00"))
    PriceFactory(
        plan_version=version,
        name="Tokens",
        model=Price.Model.PER_UNIT,
        timing=Price.Timing.IN_ARREARS,
        amount=None,
        unit_amount=D("0.01"),
        meter=meter,
        position=1,
    )
    customer = CustomerFactory(external_id="alerted")
    start(customer, version.plan, JAN1)
    return customer, meter


@pytest.mark.django_db
def test_worked_example_usage_alert_triggers_each_level_once_per_period(api, metered, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    customer, meter = metered
    api.post("/api/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/h", "events": ["alert.triggered"]})
    response = api.post(
        "/api/v1/alerts",
        {
            "customer": "alerted",
            "name": "Token usage",
            "kind": "usage",
            "meter": "tokens",
            "thresholds": [
                {"value": "1000", "recurring": False},
                {"value": "3000"},
                {"value": "2500", "recurring": True},
            ],
        },
    )
    assert response.status_code == 201, response.content
    alert = response.json()
    assert alert["thresholds"] == [
        {"value": "1000", "recurring": False},
        {"value": "3000", "recurring": False},
        {"value": "2500", "recurring": True},
    ]
    assert (alert["kind"], alert["meter"], alert["customer"]) == ("usage", "tokens", "alerted")

    # 3,000 units in January: the value crosses 1,000 and 3,000 at once -> two triggers.
    _units(customer, 3000, datetime(2026, 1, 10, tzinfo=UTC), "a")
    out = StringIO()
    call_command("run_billing", "--now", "2026-01-15T00:00:00Z", stdout=out)
    assert "(2 alert triggers)" in out.getvalue()
    triggers = api.get(f"/api/v1/alerts/{alert['id']}/triggers").json()
    assert [(t["threshold"], t["value"]) for t in triggers["results"]] == [("3000", "3000"), ("1000", "3000")]
    assert {t["period_start"] for t in triggers["results"]} == {"2026-01-01T00:00:00Z"}

    # 2,500 more: 5,500 = the highest fixed (3,000) + 1 x 2,500 -> one trigger.
    _units(customer, 2500, datetime(2026, 1, 20, tzinfo=UTC), "b")
    assert alerts_evaluate(now=datetime(2026, 1, 21, tzinfo=UTC)).triggers == 1
    # Evaluating again (the beat task, another run) adds none.
    assert alerts_evaluate(now=datetime(2026, 1, 22, tzinfo=UTC)).triggers == 0
    levels = list(AlertTrigger.objects.order_by("threshold").values_list("threshold", flat=True))
    assert levels == [D(1000), D(3000), D(5500)]
    events = list(OutboxEvent.objects.filter(type="alert.triggered").order_by("id"))
    assert [e.data["threshold"] for e in events] == ["1000", "3000", "5500"]
    assert events[2].data["value"] == "5500" and events[2].data["alert"]["id"] == alert["id"]

    # February is a new period: February's own usage counts from 0 again; 1,200 units -> 1,000 only.
    _units(customer, 1200, datetime(2026, 2, 3, tzinfo=UTC), "c")
    call_command("run_billing", "--now", "2026-02-05T00:00:00Z", stdout=StringIO())
    feb = AlertTrigger.objects.filter(period_start=datetime(2026, 2, 1, tzinfo=UTC))
    assert [(t.threshold, t.value) for t in feb] == [(D(1000), D(1200))]


@pytest.mark.django_db
def test_spend_alert_watches_the_upcoming_invoice_subtotal(metered):
    customer, _meter = metered
    from webhooks.alerts import alert_create

    alert = alert_create(customer=customer, name="Spend", kind="spend", thresholds=[{"value": D("50")}])
    # Upcoming invoice at Jan 20: January's 4,000 tokens x $0.01 = $40.00 in arrears, plus February's $20.00
    # fee in advance: subtotal $60.00 >= $50 -> one trigger.
    _units(customer, 4000, datetime(2026, 1, 12, tzinfo=UTC), "s")
    summary = alerts_evaluate(now=datetime(2026, 1, 20, tzinfo=UTC))
    assert (summary.alerts, summary.triggers) == (1, 1)
    trigger = alert.triggers.get()
    assert (trigger.threshold, trigger.value) == (D(50), D("60.00"))


@pytest.mark.django_db
def test_alert_api_refuses_bad_input_naming_the_field(api, metered):
    def post(**body):
        base = {"customer": "alerted", "name": "x", "kind": "usage", "meter": "tokens", "thresholds": [{"value": "5"}]}
        return api.post("/api/v1/alerts", {**base, **body})

    assert "customer" in post(customer="nobody").json()
    assert "meter" in post(meter="nope").json()
    assert "meter" in post(meter=None).json()
    assert "meter" in post(kind="spend").json()
    assert "thresholds" in post(thresholds=[]).json()
    assert "thresholds" in post(thresholds=[{"value": "0"}]).json()
    assert "thresholds" in post(thresholds=[{"value": 5.5}]).json()
    assert (
        "thresholds" in post(thresholds=[{"value": "1", "recurring": True}, {"value": "2", "recurring": True}]).json()
    )
    assert post().status_code == 201
    assert api.get("/api/v1/alerts?customer=alerted").json()["count"] == 1
    assert api.get("/api/v1/alerts/999999").status_code == 404
    assert api.get("/api/v1/alerts/abc/triggers").status_code == 404


@pytest.mark.django_db
def test_evaluation_reads_usage_once_per_meter_and_period_for_many_customers(metered, django_assert_max_num_queries):
    customer, meter = metered
    from webhooks.alerts import alert_create

    version = customer.subscriptions.get().plan_version
    for n in range(10):
        other = CustomerFactory(external_id=f"many-{n}")
        start(other, version.plan, JAN1)
        alert_create(customer=other, name="u", kind="usage", meter=meter, thresholds=[{"value": D(1)}])
    # Nothing reached: alerts (1) + periods (1) + one usage read for the shared January window (the meter's
    # filters, its rollup watermark and the aggregate: 3); no alert below its levels is locked or read again.
    with django_assert_max_num_queries(5):
        summary = alerts_evaluate(now=JAN1 + timedelta(days=3))
    assert (summary.alerts, summary.triggers) == (10, 0)
    # All ten reach 1 unit: each is then locked, its triggers read, one inserted and its event offered to the
    # outbox (savepoint, lock, read, insert, "does an endpoint listen?", release: 6 each).
    for n in range(10):
        _units(CustomerFactory.build(external_id=f"many-{n}"), 1, JAN1 + timedelta(days=1), f"m{n}")
    with django_assert_max_num_queries(5 + 6 * 10):
        summary = alerts_evaluate(now=JAN1 + timedelta(days=3))
    assert (summary.alerts, summary.triggers) == (10, 10)
