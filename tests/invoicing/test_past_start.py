"""A subscription that starts in the past: creating it bills its first period only; billing runs bill the rest.

Plan (``plan_with_api_calls``): $99.00 a month in advance, 5,000 API calls included, then $0.01 a call in
arrears. Both customers start on 2026-01-01 (calendar), created over the API on 2026-04-10, with the same
usage: 7,500 calls in January, 6,000 in February, 5,000 in March.

By hand: Jan 1 invoice $99.00 (a full first period, no proration); Feb 1: (7,500 - 5,000) x $0.01 = $25.00
+ $99.00 = $124.00; Mar 1: (6,000 - 5,000) x $0.01 = $10.00 + $99.00 = $109.00; Apr 1: March's 5,000 calls
are all included, $0.00 + $99.00 = $99.00. Stepping ``run_billing --now`` one month at a time and one run as
of Apr 10 give the same invoices.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from customers.api import views
from customers.models import Subscription
from invoicing.models import Invoice
from tests.factories.customers import CustomerFactory
from tests.factories.invoicing import events_create, plan_with_api_calls

from .helpers import invoices_of, utc

pytestmark = pytest.mark.django_db

CREATED_AT = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
USAGE = {utc(2026, 1, 5): 7500, utc(2026, 2, 5): 6000, utc(2026, 3, 5): 5000}
EXPECTED = [
    (utc(2026, 1, 1), Decimal("99.00")),
    (utc(2026, 2, 1), Decimal("124.00")),
    (utc(2026, 3, 1), Decimal("109.00")),
    (utc(2026, 4, 1), Decimal("99.00")),
]


@pytest.fixture
def plan(db):
    version, meter = plan_with_api_calls()
    return version.plan, meter


def _subscribe_over_the_api(api, monkeypatch, plan, meter, external_id: str) -> Subscription:
    CustomerFactory(external_id=external_id)
    for at, count in USAGE.items():
        events_create(
            customer_external_id=external_id, event_name=meter.event_name, count=count, start=at, prefix=f"{at:%m}"
        )
    monkeypatch.setattr(views, "request_now", lambda: CREATED_AT)
    response = api.post(
        "/api/v1/subscriptions", {"customer": external_id, "plan": plan.key, "start_at": "2026-01-01T00:00:00Z"}
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    # Three months in the past, yet the subscription is on its first period until a billing run moves it.
    assert (body["current_period_start"], body["current_period_end"]) == (
        "2026-01-01T00:00:00Z",
        "2026-02-01T00:00:00Z",
    )
    return Subscription.objects.get(pk=body["id"])


def _run(now: str) -> str:
    out = StringIO()
    call_command("run_billing", "--now", now, stdout=out)
    return out.getvalue()


def test_creation_bills_only_the_first_period_then_each_run_steps_one_boundary(api, monkeypatch, plan):
    sub = _subscribe_over_the_api(api, monkeypatch, *plan, "stepped")
    [first] = invoices_of(sub)
    assert (first.billing_boundary_at, first.total, first.number) == (utc(2026, 1, 1), Decimal("99.00"), "INV-000001")
    assert first.lines.get().kind == "fixed"
    for month, (boundary, total) in enumerate(EXPECTED[1:], start=2):
        line = _run(f"2026-{month:02d}-01T00:00:00Z")
        # One period per run: the run that reaches a boundary bills it, and only it.
        assert "1 period boundaries, 1 invoices created, 1 finalized" in line and "0 failures" in line
        newest = invoices_of(sub)[-1]
        assert (newest.billing_boundary_at, newest.total) == (boundary, total)
        sub.refresh_from_db()
        assert sub.current_period_start == boundary
    assert [(i.billing_boundary_at, i.total) for i in invoices_of(sub)] == EXPECTED
    assert "0 period boundaries" in _run("2026-04-10T12:00:00Z")


def test_one_run_at_the_creation_instant_bills_the_same_invoices(api, monkeypatch, plan):
    sub = _subscribe_over_the_api(api, monkeypatch, *plan, "caught-up")
    assert Invoice.objects.filter(subscription=sub).count() == 1
    line = _run("2026-04-10T12:00:00Z")
    # Feb 1, Mar 1 and Apr 1 are due: three boundaries, oldest first, one invoice each.
    assert "3 period boundaries, 3 invoices created, 3 finalized" in line
    assert [(i.billing_boundary_at, i.total) for i in invoices_of(sub)] == EXPECTED
    assert [i.number for i in invoices_of(sub)] == ["INV-000001", "INV-000002", "INV-000003", "INV-000004"]
    sub.refresh_from_db()
    assert (sub.current_period_start, sub.current_period_end) == (utc(2026, 4, 1), utc(2026, 5, 1))
