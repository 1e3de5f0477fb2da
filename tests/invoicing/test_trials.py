"""Free trials (DESIGN.md "Trials"): Lago's worked examples, through subscription_start and billing runs."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from catalog.models import Price
from invoicing.models import Invoice, InvoiceLine
from invoicing.services import billing_run_execute, subscription_change, subscription_start
from tests.factories.catalog import PlanCreditGrantFactory, PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.factories.invoicing import events_create
from tests.factories.metering import MeterFactory
from wallets.models import Wallet

from .helpers import invoices_of, utc

pytestmark = pytest.mark.django_db

START = utc(2024, 3, 5, 12, 12)


def big_plan(trial_days: int = 10, *, key: str = "enterprise", amount: str = "50000.00"):
    version = PlanVersionFactory(published=True, number=1, plan__key=key, trial_days=trial_days)
    PriceFactory(plan_version=version, name="Platform fee", amount=Decimal(amount))
    return version


def test_ten_day_trial_bills_17_of_31_days_at_its_end():
    version = big_plan(10)
    PlanCreditGrantFactory(plan_version=version, credits=Decimal("500"))
    customer = CustomerFactory()
    sub = subscription_start(
        customer=customer, plan=version.plan, start_at=START, billing="calendar", pinned_version=None, now=START
    )
    # The trial ends 10 days after the start, same time of day: Mar 15 12:12. No fee invoice at the start.
    assert sub.trial_end == utc(2024, 3, 15, 12, 12)
    assert invoices_of(sub) == []
    # Plan credits apply during the trial.
    assert Wallet.objects.get(customer=customer).balance == Decimal("500")
    billing_run_execute(now=utc(2024, 3, 15, 12, 0))
    assert invoices_of(sub) == []
    summary = billing_run_execute(now=utc(2024, 3, 15, 13, 0))
    assert summary.invoices_created == 1
    [invoice] = invoices_of(sub)
    # Mar 15 -> Apr 1 is 17 of March's 31 days: 50,000.00 x 17/31 = 27,419.3548 -> 27,419.35.
    assert invoice.reason == Invoice.Reason.TRIAL_END and invoice.total == Decimal("27419.35")
    [line] = invoice.lines.all()
    assert line.details["proration"]["text"] == "17 of 31 days"
    assert (line.period_start, line.period_end) == (utc(2024, 3, 15, 12, 12), utc(2024, 4, 1))
    # Running again bills nothing new; April 1 bills April in full.
    assert billing_run_execute(now=utc(2024, 3, 20)).invoices_created == 0
    billing_run_execute(now=utc(2024, 4, 1))
    assert invoices_of(sub)[-1].total == Decimal("50000.00")


def test_45_day_trial_override_bills_12_of_30_on_apr_19_and_april_first_invoice_has_only_march_usage():
    version = big_plan(10)
    meter = MeterFactory(key="seats-used", event_name="seat")
    PriceFactory(
        plan_version=version,
        name="Seats",
        model=Price.Model.PER_UNIT,
        timing=Price.Timing.IN_ARREARS,
        amount=None,
        unit_amount=Decimal("2"),
        meter=meter,
    )
    customer = CustomerFactory(external_id="trialist")
    sub = subscription_start(
        customer=customer,
        plan=version.plan,
        start_at=START,
        billing="calendar",
        pinned_version=None,
        now=START,
        trial_days=45,
    )
    # 45 days from Mar 5 12:12: Apr 19 12:12.
    assert sub.trial_end == utc(2024, 4, 19, 12, 12)
    events_create(customer_external_id="trialist", event_name="seat", count=30, start=utc(2024, 3, 10))
    billing_run_execute(now=utc(2024, 4, 1))
    [april_first] = invoices_of(sub)
    # April 1: March's usage only (30 x 2.00 = 60.00), usage is billed during a trial; no April fee yet.
    [usage] = april_first.lines.all()
    assert usage.kind == InvoiceLine.Kind.USAGE and april_first.total == Decimal("60.00")
    billing_run_execute(now=utc(2024, 4, 19, 13))
    trial_end = invoices_of(sub)[-1]
    # Apr 19 -> May 1 is 12 of April's 30 days: 50,000.00 x 12/30 = 20,000.00.
    assert trial_end.reason == Invoice.Reason.TRIAL_END and trial_end.total == Decimal("20000.00")


def test_a_run_catching_up_bills_the_trial_end_before_the_next_boundary():
    version = big_plan(10)
    sub = subscription_start(
        customer=CustomerFactory(),
        plan=version.plan,
        start_at=START,
        billing="calendar",
        pinned_version=None,
        now=START,
    )
    billing_run_execute(now=utc(2024, 5, 2))
    # Trial end (Mar 15: 27,419.35), then Apr 1 (50,000.00) and May 1 (50,000.00), each once, in order.
    assert [(i.reason, i.total) for i in invoices_of(sub)] == [
        (Invoice.Reason.TRIAL_END, Decimal("27419.35")),
        (Invoice.Reason.BOUNDARY, Decimal("50000.00")),
        (Invoice.Reason.BOUNDARY, Decimal("50000.00")),
    ]


def test_a_change_during_the_trial_keeps_its_end_from_the_original_start_with_the_new_plans_days():
    small = big_plan(10, key="small", amount="100.00")
    large = big_plan(14, key="large", amount="300.00")
    sub = subscription_start(
        customer=CustomerFactory(), plan=small.plan, start_at=START, billing="calendar", pinned_version=None, now=START
    )
    t = START + timedelta(days=3)
    outcome = subscription_change(subscription=sub, plan=large.plan, now=t)
    # Still in the trial: no fee is billed or credited; the trial now ends 14 days after Mar 5 12:12 = Mar 19 12:12.
    assert outcome.invoice is None and outcome.credit_notes == []
    new = outcome.subscription
    assert new.trial_end == utc(2024, 3, 19, 12, 12)
    billing_run_execute(now=utc(2024, 3, 19, 13))
    [invoice] = invoices_of(new)
    # Mar 19 -> Apr 1: 13 of 31 days of 300.00 = 125.8065 -> 125.81.
    assert invoice.total == Decimal("125.81")
