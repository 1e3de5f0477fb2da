"""Pricing operations over the API: backtest a version on billed periods, migrate pinned subscriptions.

The plan (issue's worked examples): v1 = 10.00 a month in advance + 0.01 per API call in arrears, published
from 2020. Two customers subscribe on 2026-01-01 (calendar billing): "small" makes 100 calls in January, "large"
1,000; the Feb 1 billing run bills January. By hand, January as invoiced (fee billed on Jan 1, usage on Feb 1):
small 10.00 + 100 x 0.01 = 11.00, large 10.00 + 1,000 x 0.01 = 20.00, together 31.00.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from customers.models import Subscription
from invoicing.models import Invoice, InvoiceLine, SubscriptionMigration
from invoicing.services import billing_run_execute
from tests.factories.customers import CustomerFactory
from tests.factories.invoicing import events_create
from tests.factories.metering import MeterFactory

from .helpers import invoices_of, start, utc

pytestmark = pytest.mark.django_db

BACKTEST = "/api/v1/plans/api/versions/{}/backtest"
MIGRATE = "/api/v1/plans/api/versions/{}/migrate"


def _version(api, fee: str, rate: str, *, publish: bool, effective_from: str = "2020-01-01T00:00:00Z") -> int:
    prices = [{"name": "Platform fee", "model": "flat_fee", "amount": fee}]
    if rate is not None:
        prices.append({"name": "API calls", "model": "per_unit", "meter": "calls", "unit_amount": rate})
    response = api.post(
        "/api/v1/plans/api/versions", {"prices": prices, "publish": publish, "effective_from": effective_from}
    )
    assert response.status_code == 201, response.json()
    return response.json()["number"]


@pytest.fixture
def billed(api):
    """v1 published; two customers subscribed Jan 1 with 100 and 1,000 calls in January; January billed."""
    MeterFactory(key="calls", name="API calls", event_name="api_call")
    assert api.post("/api/v1/plans", {"key": "api", "name": "API", "currency": "USD"}).status_code == 201
    _version(api, "10.00", "0.01", publish=True)
    from catalog.models import Plan

    plan = Plan.objects.get(key="api")
    subs = {}
    for external_id, calls in (("small", 100), ("large", 1000)):
        customer = CustomerFactory(external_id=external_id, currency="USD")
        events_create(customer_external_id=external_id, event_name="api_call", count=calls, start=utc(2026, 1, 5))
        subs[external_id] = start(customer, plan, utc(2026, 1, 1))
    billing_run_execute(now=utc(2026, 2, 1))
    return plan, subs


def _invoice_snapshot():
    return sorted(
        (i.pk, i.status, i.subtotal, i.total, tuple(i.lines.order_by("id").values_list("amount", flat=True)))
        for i in Invoice.objects.all()
    )


def test_backtest_of_a_draft_on_january(api, billed):
    plan, subs = billed
    before = _invoice_snapshot()
    # Draft v2 = 5.00 + 0.02 per call. By hand: small 5.00 + 100 x 0.02 = 7.00 (delta -4.00),
    # large 5.00 + 1,000 x 0.02 = 25.00 (delta +5.00); totals 31.00 -> 32.00 (+1.00), one up, one down.
    assert _version(api, "5.00", "0.02", publish=False) == 2
    response = api.post(BACKTEST.format(2), {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["version"] == 2 and body["currency"] == "USD"
    assert (body["from"], body["to"]) == ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")
    assert body["customers"] == [
        {
            "customer": "large",
            "subscription": str(subs["large"].pk),
            "periods": 1,
            "actual": "20.00",
            "simulated": "25.00",
            "delta": "5.00",
        },
        {
            "customer": "small",
            "subscription": str(subs["small"].pk),
            "periods": 1,
            "actual": "11.00",
            "simulated": "7.00",
            "delta": "-4.00",
        },
    ]
    assert body["totals"] == {
        "actual": "31.00",
        "simulated": "32.00",
        "delta": "1.00",
        "customers": 2,
        "up": 1,
        "down": 1,
        "unchanged": 0,
    }
    # Saved nothing: v2 is still a draft and every invoice and line is as it was.
    assert api.get("/api/v1/plans/api/versions/2").json()["status"] == "draft"
    assert _invoice_snapshot() == before

    csv = api.post(BACKTEST.format(2) + "?format=csv", {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"})
    assert csv.status_code == 200
    assert csv["Content-Type"].startswith("text/csv")
    assert csv.content.decode().splitlines() == [
        "customer,subscription,periods,actual,simulated,delta",
        f"large,{subs['large'].pk},1,20.00,25.00,5.00",
        f"small,{subs['small'].pk},1,11.00,7.00,-4.00",
    ]


def test_backtest_of_the_billing_version_changes_nothing(api, billed):
    # v1 re-rated on its own usage: every row unchanged, 31.00 both ways.
    body = api.post(BACKTEST.format(1), {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}).json()
    assert body["totals"] == {
        "actual": "31.00",
        "simulated": "31.00",
        "delta": "0.00",
        "customers": 2,
        "up": 0,
        "down": 0,
        "unchanged": 2,
    }


def test_backtest_leaves_out_periods_not_closed_yet(api, billed):
    # February's fee (10.00 each) is billed on Feb 1 but February is not closed: a window on February finds
    # no billed period, so no row.
    body = api.post(BACKTEST.format(1), {"from": "2026-02-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}).json()
    assert body["customers"] == [] and body["totals"]["customers"] == 0 and body["totals"]["actual"] == "0.00"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"from": "2025-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}, "to"),  # 13 months
        ({"from": "2026-01-01T00:00:00Z", "to": "2099-01-01T00:00:00Z"}, "to"),  # ends in the future
        ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),  # empty window
        ({"from": "not a time"}, "from"),
    ],
)
def test_backtest_bad_windows_name_the_field(api, billed, payload, field):
    response = api.post(BACKTEST.format(1), payload)
    assert response.status_code == 400, response.json()
    assert field in response.json()


def test_backtest_unknown_version_is_404(api, billed):
    assert api.post(BACKTEST.format(9), {}).status_code == 404
    assert api.post("/api/v1/plans/api/versions/x/backtest", {}).status_code == 404


def test_backtest_exactly_twelve_months_is_accepted(api, billed):
    response = api.post(BACKTEST.format(1), {"from": "2025-02-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"})
    assert response.status_code == 200
    assert response.json()["totals"]["actual"] == "31.00"


def test_migration_dry_run_then_move(api, billed):
    plan, subs = billed
    # Both January subscriptions pinned to v1; a third customer pinned to v2 (published from 2026-01-01, 12.00).
    Subscription.objects.filter(pk__in=[s.pk for s in subs.values()]).update(pinned_version=plan.versions.get(number=1))
    assert _version(api, "12.00", None, publish=True, effective_from="2026-01-01T00:00:00Z") == 2
    other = start(
        CustomerFactory(external_id="other", currency="USD"),
        plan,
        utc(2026, 1, 1),
        pinned_version=plan.versions.get(number=2),
    )
    billing_run_execute(now=utc(2026, 2, 1))  # bills "other"'s January
    assert _version(api, "15.00", None, publish=True, effective_from="2026-01-01T00:00:00Z") == 3
    before = _invoice_snapshot()

    dry = api.post(MIGRATE.format(3), {"from_versions": [1], "dry_run": True})
    assert dry.status_code == 200, dry.json()
    assert dry.json() == {"count": 2, "subscriptions": sorted([str(s.pk) for s in subs.values()], key=int)}
    assert Subscription.objects.filter(pinned_version__number=1).count() == 2
    assert not SubscriptionMigration.objects.exists()

    moved = api.post(MIGRATE.format(3), {"from_versions": [1]})
    assert moved.json()["count"] == 2
    assert _invoice_snapshot() == before  # history untouched
    audit = SubscriptionMigration.objects.order_by("subscription_id")
    assert [(a.from_version.number, a.to_version.number, a.effective_at) for a in audit] == [
        (1, 3, utc(2026, 3, 1)),
        (1, 3, utc(2026, 3, 1)),
    ]
    # Again: nothing left on v1.
    assert api.post(MIGRATE.format(3), {"from_versions": [1]}).json() == {"count": 0, "subscriptions": []}

    # The Mar 1 boundary bills February's usage with v1 (small: 0 calls in February) and March's fee with v3.
    billing_run_execute(now=utc(2026, 3, 1))
    small = invoices_of(subs["small"])
    assert [i.subtotal for i in small] == [Decimal("10.00"), Decimal("11.00"), Decimal("15.00")]
    march = small[-1].lines.get(kind=InvoiceLine.Kind.FIXED)
    assert (march.plan_version.number, march.amount, march.period_start) == (3, Decimal("15.00"), utc(2026, 3, 1))
    # The subscription pinned to v2 stays: its March fee is 12.00.
    assert invoices_of(other)[-1].lines.get(kind=InvoiceLine.Kind.FIXED).amount == Decimal("12.00")


def test_migration_to_a_draft_or_from_another_plans_version_is_400(api, billed):
    assert _version(api, "5.00", "0.02", publish=False) == 2
    response = api.post(MIGRATE.format(2), {"from_versions": [1]})
    assert response.status_code == 400 and "version" in response.json()
    response = api.post(MIGRATE.format(1), {"from_versions": [7]})
    assert response.status_code == 400 and "from_versions" in response.json()


def test_a_draft_recalculated_after_a_migration_keeps_its_version(api):
    # A customer with 3 grace days, pinned to v1 ($10.00 + $0.01 a call), 100 calls in January: the Feb 1 invoice
    # stays a draft: January's usage 100 x 0.01 = 1.00 + February's fee 10.00 = 11.00. Moved to v3 ($15.00 a month,
    # published) on Feb 2: from Mar 1. Recalculating the Feb 1 draft still prices January and February with v1:
    # 11.00; the Mar 1 boundary bills February's usage with v1 (0 calls: 0.00) and March's fee with v3 (15.00).
    from catalog.models import Plan
    from invoicing.services import invoice_recalculate

    MeterFactory(key="calls", name="API calls", event_name="api_call")
    assert api.post("/api/v1/plans", {"key": "api", "name": "API", "currency": "USD"}).status_code == 201
    _version(api, "10.00", "0.01", publish=True)
    plan = Plan.objects.get(key="api")
    customer = CustomerFactory(external_id="graced", currency="USD", invoice_grace_days=3)
    events_create(customer_external_id="graced", event_name="api_call", count=100, start=utc(2026, 1, 5))
    sub = start(customer, plan, utc(2026, 1, 1), pinned_version=plan.versions.get(number=1))
    billing_run_execute(now=utc(2026, 2, 1))
    draft = invoices_of(sub)[-1]
    assert (draft.status, draft.subtotal) == (Invoice.Status.DRAFT, Decimal("11.00"))
    assert _version(api, "15.00", None, publish=True, effective_from="2026-01-01T00:00:00Z") == 2
    assert api.post(MIGRATE.format(2), {"from_versions": [1]}).json()["count"] == 1

    recalculated = invoice_recalculate(invoice=draft, now=utc(2026, 2, 2))
    assert recalculated.subtotal == Decimal("11.00")
    assert set(recalculated.lines.values_list("plan_version__number", flat=True)) == {1}

    billing_run_execute(now=utc(2026, 3, 1))
    march = invoices_of(sub)[-1]
    assert sorted((line.plan_version.number, line.amount) for line in march.lines.all()) == [
        (1, Decimal("0.00")),
        (2, Decimal("15.00")),
    ]
