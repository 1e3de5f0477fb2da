"""Billing runs: penny-exact taxes, recalculation, failure isolation, the command, the Celery tasks, parallel runs."""

from __future__ import annotations

import threading
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from catalog.models import Price
from customers.models import Subscription
from invoicing.models import BillingRun, Invoice
from invoicing.services import billing_run_execute, invoice_recalculate
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory, TaxRateFactory
from tests.factories.invoicing import events_create
from tests.factories.metering import MeterFactory

from .helpers import invoices_of, start, utc


@pytest.mark.django_db
def test_six_tenths_of_a_cent_lines_and_40_percent_tax():
    version = PlanVersionFactory(published=True, number=1)
    customer = CustomerFactory(external_id="penny")
    customer.tax_rates.add(TaxRateFactory(code="tax-40", name="40%", percentage=Decimal("40")))
    for i, unit in enumerate(["0.004"] * 6 + ["0.01"] * 2):
        meter = MeterFactory()
        PriceFactory(
            plan_version=version,
            name=f"Usage {i}",
            model=Price.Model.PER_UNIT,
            timing=Price.Timing.IN_ARREARS,
            amount=None,
            unit_amount=Decimal(unit),
            meter=meter,
            position=i,
        )
        events_create(
            customer_external_id="penny", event_name=meter.event_name, count=1, start=utc(2026, 1, 2), prefix=f"m{i}"
        )
    sub = start(customer, version.plan, utc(2026, 1, 1))
    billing_run_execute(now=utc(2026, 2, 1))
    feb = invoices_of(sub)[1]
    # Lines: six x $0.004 each round half-up to $0.00; two x $0.01. Subtotal = $0.02.
    # Tax once on the rate's lines: 40% x $0.02 = $0.008 -> $0.01 (not 8 x per-line rounding). Total $0.03.
    assert sorted(line.amount for line in feb.lines.all()) == [Decimal("0.00")] * 6 + [Decimal("0.01")] * 2
    assert (feb.subtotal, feb.tax, feb.total) == (Decimal("0.02"), Decimal("0.01"), Decimal("0.03"))
    assert sum(line.tax for line in feb.lines.all()) == Decimal("0.01")


@pytest.mark.django_db
def test_draft_recalculates_from_events_until_finalized():
    version = PlanVersionFactory(published=True, number=1)
    meter = MeterFactory()
    PriceFactory(
        plan_version=version,
        name="Calls",
        model=Price.Model.PER_UNIT,
        timing=Price.Timing.IN_ARREARS,
        amount=None,
        unit_amount=Decimal("0.50"),
        meter=meter,
    )
    customer = CustomerFactory(external_id="late-events", invoice_grace_days=2)
    sub = start(customer, version.plan, utc(2026, 1, 1))
    events_create(customer_external_id="late-events", event_name=meter.event_name, count=4, start=utc(2026, 1, 20))
    billing_run_execute(now=utc(2026, 2, 1))
    feb = invoices_of(sub)[1]
    # 4 calls x $0.50 = $2.00, a draft for 2 days.
    assert feb.status == Invoice.Status.DRAFT and feb.total == Decimal("2.00")
    events_create(
        customer_external_id="late-events", event_name=meter.event_name, count=2, start=utc(2026, 1, 31), prefix="late"
    )
    invoice_recalculate(invoice=feb, now=utc(2026, 2, 2))
    feb.refresh_from_db()
    # 6 calls x $0.50 = $3.00 once the late events are in.
    assert feb.total == Decimal("3.00") and feb.lines.get().quantity == 6
    billing_run_execute(now=utc(2026, 2, 3))
    feb.refresh_from_db()
    assert feb.status == Invoice.Status.FINALIZED


@pytest.mark.django_db
def test_one_failing_subscription_does_not_stop_the_run(monkeypatch):
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("5"))
    good = start(CustomerFactory(), version.plan, utc(2026, 1, 1))
    bad = start(CustomerFactory(), version.plan, utc(2026, 1, 1))
    from invoicing.services import boundary

    real = boundary.subscription_boundary_bill_locked

    def flaky(*, subscription, now, context):
        if subscription.pk == bad.pk:
            raise RuntimeError("meter store unavailable")
        return real(subscription=subscription, now=now, context=context)

    monkeypatch.setattr(boundary, "subscription_boundary_bill_locked", flaky)
    summary = billing_run_execute(now=utc(2026, 2, 1))
    assert summary.invoices_created == 1 and len(summary.failures) == 1
    assert "meter store unavailable" in summary.failures[0]
    run = BillingRun.objects.get()
    assert run.status == BillingRun.Status.FAILED and run.counts["invoices_created"] == 1
    assert len(invoices_of(good)) == 2 and len(invoices_of(bad)) == 1


@pytest.mark.django_db
def test_run_billing_command_prints_one_line():
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("5"))
    start(CustomerFactory(external_id="one"), version.plan, utc(2026, 1, 1))
    start(CustomerFactory(external_id="two"), version.plan, utc(2026, 1, 1))
    out = StringIO()
    call_command("run_billing", "--now", "2026-02-01T00:00:00Z", "--customer", "one", stdout=out)
    assert out.getvalue().count("\n") == 1
    assert "1 period boundaries, 1 invoices created" in out.getvalue()
    assert Invoice.objects.filter(customer__external_id="two").count() == 1


@pytest.mark.django_db
def test_beat_task_fans_out_chunks(settings):
    from invoicing import tasks

    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("5"))
    subs = [start(CustomerFactory(), version.plan, utc(2026, 1, 1)) for _ in range(3)]
    tasks.CHUNK_SIZE = 2
    try:
        tasks.billing_run_task.apply(kwargs={"now": "2026-03-01T00:00:00+00:00"}).get()
    finally:
        tasks.CHUNK_SIZE = 200
    # Each subscription: Jan 1 start + Feb 1 + Mar 1 boundaries = 3 invoices.
    assert all(len(invoices_of(s)) == 3 for s in subs)
    assert tasks.subscriptions_bill_task.name == "invoicing.subscriptions_bill"
    assert tasks.billing_run_task.name == "invoicing.billing_run_execute"


@pytest.mark.django_db
def test_tasks_read_a_naive_now_as_utc_like_the_command():
    # A naive "now" used to reach the chunks unconverted and they billed nothing (the beat's line still said
    # "0 failures"); an unreadable one became None. Both are read as run_billing --now reads them: naive = UTC.
    from invoicing import tasks

    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("5"))
    sub = start(CustomerFactory(), version.plan, utc(2026, 1, 1))
    line = tasks.billing_run_task.apply(kwargs={"now": "2026-02-01T00:00:00"}).get()
    assert "0 failures" in line
    # Jan 1 start invoice + Feb 1 boundary = 2 invoices.
    assert [i.billing_boundary_at for i in invoices_of(sub)] == [utc(2026, 1, 1), utc(2026, 2, 1)]
    with pytest.raises(ValueError, match="cannot parse"):
        tasks.billing_run_task.apply(kwargs={"now": "next tuesday"}).get()
    with pytest.raises(CommandError, match="--now: cannot parse"):
        call_command("run_billing", "--now", "next tuesday", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
def test_parallel_runs_bill_each_period_once_with_gapless_numbers():
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("7"))
    subs = [start(CustomerFactory(), version.plan, utc(2026, 1, 1)) for _ in range(12)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run():
        try:
            barrier.wait()
            billing_run_execute(now=utc(2026, 4, 1))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert not [f for run in BillingRun.objects.all() for f in run.failures]
    # 12 subscriptions x (start + Feb 1 + Mar 1 + Apr 1) = 48 invoices, each boundary once.
    for sub in subs:
        assert [i.billing_boundary_at for i in invoices_of(sub)] == [utc(2026, m, 1) for m in (1, 2, 3, 4)]
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == [f"INV-{n:06d}" for n in range(1, 49)]
    assert set(Subscription.objects.values_list("current_period_start", flat=True)) == {utc(2026, 4, 1)}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "now",
    [
        "9999-12-31T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "2100-01-01T00:00:01Z",
        "9999-12-31T23:00:00-05:00",
        "2026-13-45T00:00:00Z",
    ],
)
def test_run_billing_refuses_a_now_outside_the_accepted_range(now):
    # A run as of 9999 would bill every period up to it (one per month per subscription), so it is refused
    # before any work, like an unreadable instant (core.instants: 2000-01-01..2100-01-01).
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("5"))
    start(CustomerFactory(), version.plan, utc(2026, 1, 1))
    with pytest.raises(CommandError, match="--now: "):
        call_command("run_billing", "--now", now, stdout=StringIO())
    from invoicing import tasks

    with pytest.raises(ValueError):
        tasks.billing_run_task.apply(kwargs={"now": now}).get()
    assert Invoice.objects.count() == 1 and not BillingRun.objects.exists()


@pytest.mark.django_db
def test_billing_run_execute_refuses_a_now_out_of_range_naming_it():
    from datetime import UTC, datetime

    from core.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as caught:
        billing_run_execute(now=datetime(9999, 12, 31, tzinfo=UTC))
    assert caught.value.field == "now"
    assert not BillingRun.objects.exists()
    # The bounds themselves are accepted.
    assert billing_run_execute(now=utc(2100, 1, 1)).failures == []
