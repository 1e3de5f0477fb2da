"""A subscription whose boundary cannot be billed is named everywhere: run summary, stored run, command, dashboard.

The failing subscription is real, not a patched function: its customer sent one event whose ``tokens`` value is
99,999,999,999,999,999,999 (20 digits, a number the ingestion grammar accepts). At $1 a token, January's usage
line is $99,999,999,999,999,999,999.00, which no invoice amount can hold (19 digits, 4 after the point: under
10^15), so the Feb 1 boundary fails in the database and rolls back. The other customer, same plan, is billed.
"""

from __future__ import annotations

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from backoffice import dashboard
from catalog.models import Price
from customers.models import Subscription
from invoicing.models import BillingRun
from invoicing.services import billing_run_execute
from metering.models import Event
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.factories.invoicing import events_create
from tests.factories.metering import MeterFactory

from .helpers import invoices_of, start, utc

pytestmark = pytest.mark.django_db

HUGE = "99999999999999999999"


@pytest.fixture
def subscriptions():
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, name="Base fee", amount=Decimal("5"))
    meter = MeterFactory(key="tokens", event_name="generation", aggregation="sum", field="tokens")
    PriceFactory(
        plan_version=version,
        name="Tokens",
        model=Price.Model.PER_UNIT,
        timing=Price.Timing.IN_ARREARS,
        amount=None,
        unit_amount=Decimal("1"),
        meter=meter,
        position=1,
    )
    good = start(CustomerFactory(external_id="fine", name="Fine Co"), version.plan, utc(2026, 1, 1))
    bad = start(CustomerFactory(external_id="huge", name="Huge Co"), version.plan, utc(2026, 1, 1))
    events_create(
        customer_external_id="fine", event_name="generation", count=3, start=utc(2026, 1, 10), properties={"tokens": 2}
    )
    events_create(
        customer_external_id="huge",
        event_name="generation",
        count=1,
        start=utc(2026, 1, 10),
        properties={"tokens": HUGE},
    )
    return good, bad


def test_the_run_names_the_failing_subscription_and_keeps_trying_until_fixed(subscriptions):
    good, bad = subscriptions
    summary = billing_run_execute(now=utc(2026, 2, 1))
    # The good one: Feb fee $5.00 + January's 3 x 2 tokens x $1 = $11.00.
    assert invoices_of(good)[-1].total == Decimal("11.00")
    assert summary.invoices_created == 1 and len(summary.failures) == 1
    [failure] = summary.failed_subscriptions
    assert (failure.subscription_id, failure.customer, failure.boundary) == (bad.pk, "huge", utc(2026, 2, 1))
    assert failure.error.startswith("DataError: numeric field overflow")
    assert "\n" not in failure.error
    line = summary.line()
    assert "\n" not in line
    assert line.endswith(f"1 failures: subscription {bad.pk} (customer huge): {failure.error}")

    run = BillingRun.objects.get()
    assert run.status == BillingRun.Status.FAILED and run.summary == line
    assert run.failed_subscriptions == [
        {
            "subscription": bad.pk,
            "customer": "huge",
            "boundary": "2026-02-01T00:00:00+00:00",
            "error": failure.error,
        }
    ]
    bad.refresh_from_db()
    assert bad.current_period_end == utc(2026, 2, 1) and len(invoices_of(bad)) == 1  # still due, nothing half-done

    # The next run tries again (the boundary is still due) and names it again.
    again = billing_run_execute(now=utc(2026, 2, 2))
    assert [f.subscription_id for f in again.failed_subscriptions] == [bad.pk]
    # Once the cause is gone (the event corrected), the next run bills it.
    Event.objects.filter(customer_external_id="huge").update(properties={"tokens": 4})
    fixed = billing_run_execute(now=utc(2026, 2, 3))
    assert not fixed.failures and fixed.line().endswith("0 failures")
    # $5.00 February fee + January's 4 tokens x $1 = $9.00.
    assert invoices_of(bad)[-1].total == Decimal("9.00")


def test_the_command_prints_the_failure_on_its_line_and_in_full_on_stderr(subscriptions):
    _, bad = subscriptions
    out, err = StringIO(), StringIO()
    call_command("run_billing", "--now", "2026-02-01T00:00:00Z", stdout=out, stderr=err)
    assert out.getvalue().count("\n") == 1
    assert f"1 failures: subscription {bad.pk} (customer huge): DataError: numeric field overflow" in out.getvalue()
    assert err.getvalue().startswith(f"run_billing failure: subscription {bad.pk} (customer huge): DataError")


def test_the_summary_line_names_five_failures_and_counts_the_rest():
    from invoicing.services.run import RunSummary

    summary = RunSummary(as_of=utc(2026, 2, 1), failures=[f"subscription {n}: PricingError: bad" for n in range(7)])
    assert summary.line().endswith(
        "7 failures: subscription 0: PricingError: bad; subscription 1: PricingError: bad; subscription 2: "
        "PricingError: bad; subscription 3: PricingError: bad; subscription 4: PricingError: bad; and 2 more"
    )


def test_the_dashboard_alerts_with_links_to_the_subscription_and_customer(admin_client, subscriptions):
    _, bad = subscriptions
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert 'id="billing-failures"' not in page  # no run yet, no alert
    billing_run_execute(now=utc(2026, 2, 1))
    failures = dashboard.billing_failures()
    assert failures["count"] == 1 and failures["rows"][0]["subscription"] == bad
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert 'id="billing-failures"' in page
    assert "Billing failed for 1 subscription in the last run" in page
    assert reverse("admin:customers_subscription_change", args=[bad.pk]) in page
    assert reverse("admin:customers_customer_change", args=[bad.customer_id]) in page
    assert "Huge Co" in page and "DataError: numeric field overflow" in page
    # A later run that bills it clears the alert.
    Event.objects.filter(customer_external_id="huge").update(properties={"tokens": 4})
    billing_run_execute(now=utc(2026, 2, 2))
    assert 'id="billing-failures"' not in admin_client.get(reverse("admin:index")).content.decode()


def test_the_beat_run_shows_failures_its_chunks_recorded(admin_client, subscriptions):
    from invoicing import tasks

    _, bad = subscriptions
    tasks.billing_run_task.apply(kwargs={"now": "2026-02-01T00:00:00Z"}).get()
    # The beat's own row, and a row for the chunk that failed (same as_of).
    assert sorted(BillingRun.objects.values_list("trigger", flat=True)) == ["beat", BillingRun.CHUNK_TRIGGER]
    failures = dashboard.billing_failures()
    assert failures["run"].trigger == "beat"
    assert [row["subscription_id"] for row in failures["rows"]] == [bad.pk]
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:customers_subscription_change", args=[bad.pk]) in page
    assert Subscription.objects.get(pk=bad.pk).current_period_end == utc(2026, 2, 1)
