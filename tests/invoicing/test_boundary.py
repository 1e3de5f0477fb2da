"""The worked examples of the invoicing issue, through subscription_start and billing_run_execute."""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.models import PlanVersion
from customers.models import Subscription
from invoicing.models import Invoice, InvoiceLine
from invoicing.services import billing_run_execute
from tests.factories.catalog import PlanFactory, PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory, TaxRateFactory
from tests.factories.invoicing import events_create, plan_with_api_calls

from .helpers import invoices_of, start, utc

pytestmark = pytest.mark.django_db


def test_platform_fee_with_included_calls_jan_then_feb():
    version, meter = plan_with_api_calls()
    customer = CustomerFactory(external_id="acme")
    sub = start(customer, version.plan, utc(2026, 1, 1))
    [jan] = invoices_of(sub)
    # Jan 1 start on a calendar boundary: a full period, $99.00 in advance, no proration.
    assert jan.total == Decimal("99.00")
    assert jan.status == Invoice.Status.PAID or jan.status == Invoice.Status.FINALIZED
    assert jan.number == "INV-000001"
    assert [line.kind for line in jan.lines.all()] == ["fixed"]

    events_create(customer_external_id="acme", event_name=meter.event_name, count=7500, start=utc(2026, 1, 5))
    summary = billing_run_execute(now=utc(2026, 2, 1))
    assert summary.invoices_created == 1 and not summary.failures
    jan_again, feb = invoices_of(sub)
    assert jan_again.total == Decimal("99.00")
    # Feb 1: January's usage (7,500 - 5,000 included) x $0.01 = $25.00, plus February's fee $99.00 = $124.00.
    assert feb.subtotal == Decimal("124.00")
    assert feb.total == Decimal("124.00")
    assert feb.billing_boundary_at == utc(2026, 2, 1)
    assert (feb.period_start, feb.period_end) == (utc(2026, 1, 1), utc(2026, 2, 1))
    usage, fee = feb.lines.order_by("position")
    assert usage.kind == InvoiceLine.Kind.USAGE and usage.amount == Decimal("25.00")
    assert usage.description == "API calls — 7,500 units, 5,000 included, Jan 1–31 2026"
    assert usage.quantity == Decimal(7500)
    assert usage.meter == meter and usage.plan_version == version
    assert (usage.period_start, usage.period_end) == (utc(2026, 1, 1), utc(2026, 2, 1))
    assert [Decimal(p["units"]) for p in usage.details["breakdown"]] == [5000, 2500]
    assert usage.details["plan_version"] == 1 and usage.details["meter"] == meter.key
    assert fee.amount == Decimal("99.00")
    assert (fee.period_start, fee.period_end) == (utc(2026, 2, 1), utc(2026, 3, 1))
    sub.refresh_from_db()
    assert (sub.current_period_start, sub.current_period_end) == (utc(2026, 2, 1), utc(2026, 3, 1))


def test_tax_20_percent_on_124():
    version, meter = plan_with_api_calls()
    customer = CustomerFactory(external_id="taxed")
    customer.tax_rates.add(TaxRateFactory(code="vat-20", percentage=Decimal("20")))
    sub = start(customer, version.plan, utc(2026, 1, 1))
    events_create(customer_external_id="taxed", event_name=meter.event_name, count=7500, start=utc(2026, 1, 5))
    billing_run_execute(now=utc(2026, 2, 1))
    feb = invoices_of(sub)[1]
    # 20% of $124.00 = $24.80; total $124.00 + $24.80 = $148.80. Line shares: 25.00 -> 5.00, 99.00 -> 19.80.
    assert (feb.subtotal, feb.tax, feb.total) == (Decimal("124.00"), Decimal("24.80"), Decimal("148.80"))
    assert sorted(line.tax for line in feb.lines.all()) == [Decimal("5.00"), Decimal("19.80")]
    assert feb.tax_breakdown == [{"code": "vat-20", "percentage": "20", "taxable": "124.00", "amount": "24.80"}]
    assert feb.amount_due == Decimal("148.80")


def test_calendar_start_jan_15_is_prorated_17_of_31_days():
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, name="Seat", amount=Decimal("31"))
    customer = CustomerFactory()
    sub = start(customer, version.plan, utc(2026, 1, 15, 9, 30))
    [first] = invoices_of(sub)
    # Jan 15 (any time of day) to Feb 1 is 17 of January's 31 days: $31 x 17 / 31 = $17.00.
    [line] = first.lines.all()
    assert line.kind == InvoiceLine.Kind.PRORATION
    assert line.amount == Decimal("17.00") and first.total == Decimal("17.00")
    assert line.details["proration"]["text"] == "17 of 31 days"
    assert "(17 of 31 days)" in line.description
    billing_run_execute(now=utc(2026, 2, 1))
    feb = invoices_of(sub)[1]
    # February in advance, a full period: $31.00.
    assert feb.total == Decimal("31.00")
    assert feb.lines.get().kind == InvoiceLine.Kind.FIXED


def test_anniversary_from_jan_31_bills_feb_28_mar_31_apr_30():
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("10"))
    sub = start(CustomerFactory(), version.plan, utc(2026, 1, 31, 10), billing="anniversary")
    billing_run_execute(now=utc(2026, 5, 1))
    boundaries = [inv.billing_boundary_at for inv in invoices_of(sub)]
    # Periods from the original anchor: Jan 31 -> Feb 28 -> Mar 31 -> Apr 30 (10:00 kept).
    assert boundaries == [utc(2026, 1, 31, 10), utc(2026, 2, 28, 10), utc(2026, 3, 31, 10), utc(2026, 4, 30, 10)]
    assert all(inv.total == Decimal("10.00") for inv in invoices_of(sub))


def test_version_published_mid_january_applies_from_next_period_unless_pinned():
    plan = PlanFactory()
    v1 = PlanVersionFactory(plan=plan, published=True, number=1, effective_from=utc(2025, 1, 1))
    PriceFactory(plan_version=v1, amount=Decimal("20"))
    floating = start(CustomerFactory(), plan, utc(2026, 1, 1))
    pinned = start(CustomerFactory(), plan, utc(2026, 1, 1), pinned_version=v1)
    v2 = PlanVersionFactory(plan=plan, published=True, number=2, effective_from=utc(2026, 1, 16))
    PriceFactory(plan_version=v2, amount=Decimal("25"))
    billing_run_execute(now=utc(2026, 2, 1))
    jan, feb = invoices_of(floating)
    # January was billed with v1 ($20) and stays so; February's in-advance fee uses v2 ($25).
    assert jan.total == Decimal("20.00") and jan.lines.get().plan_version == v1
    assert feb.total == Decimal("25.00") and feb.lines.get().plan_version == v2
    floating.refresh_from_db()
    assert floating.plan_version == v2
    # Pinned to v1: February is $20 again.
    assert invoices_of(pinned)[1].total == Decimal("20.00")
    assert PlanVersion.objects.count() == 2


def test_start_in_the_past_bills_its_first_period_and_the_run_catches_up_once():
    version, meter = plan_with_api_calls()
    customer = CustomerFactory(external_id="late")
    sub = start(customer, version.plan, utc(2026, 1, 1), now=utc(2026, 3, 10))
    # Jan 1 start, created on Mar 10: only the first period's in-advance invoice; the subscription stays on
    # January until a billing run advances it.
    assert [i.billing_boundary_at for i in invoices_of(sub)] == [utc(2026, 1, 1)]
    sub.refresh_from_db()
    assert (sub.current_period_start, sub.current_period_end) == (utc(2026, 1, 1), utc(2026, 2, 1))
    # The run as of Mar 10 bills the Feb 1 and Mar 1 boundaries; a second run, or an earlier one, bills nothing.
    first = billing_run_execute(now=utc(2026, 3, 10))
    assert (first.boundaries, first.invoices_created) == (2, 2)
    again = billing_run_execute(now=utc(2026, 3, 10))
    earlier = billing_run_execute(now=utc(2026, 2, 1))
    assert again.invoices_created == earlier.invoices_created == 0
    assert [i.billing_boundary_at for i in invoices_of(sub)] == [utc(2026, 1, 1), utc(2026, 2, 1), utc(2026, 3, 1)]
    assert Invoice.objects.count() == 3
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == ["INV-000001", "INV-000002", "INV-000003"]


def test_run_twice_bills_once_and_cancel_at_period_end_ends_without_next_fee():
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("10"))
    sub = start(CustomerFactory(), version.plan, utc(2026, 1, 1))
    Subscription.objects.filter(pk=sub.pk).update(cancel_at_period_end=True)
    assert billing_run_execute(now=utc(2026, 2, 1)).invoices_created == 1
    assert billing_run_execute(now=utc(2026, 2, 1)).invoices_created == 0
    assert billing_run_execute(now=utc(2026, 6, 1)).invoices_created == 0
    sub.refresh_from_db()
    assert sub.status == Subscription.Status.ENDED and sub.ended_at == utc(2026, 2, 1)
    last = invoices_of(sub)[-1]
    # Ended at Feb 1: no February fee; nothing in arrears -> a zero invoice, finalized with nothing due = paid.
    assert last.total == Decimal("0.00") and last.status == Invoice.Status.PAID
    assert last.lines.count() == 0


def test_grace_days_keep_a_draft_until_the_run_after_grace():
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("10"))
    customer = CustomerFactory(invoice_grace_days=3, net_payment_terms=30)
    sub = start(customer, version.plan, utc(2026, 1, 1))
    [inv] = invoices_of(sub)
    assert inv.status == Invoice.Status.DRAFT and inv.number is None
    assert inv.finalize_after == utc(2026, 1, 4)
    assert billing_run_execute(now=utc(2026, 1, 3, 23)).invoices_finalized == 0
    assert billing_run_execute(now=utc(2026, 1, 4)).invoices_finalized == 1
    inv.refresh_from_db()
    assert inv.status == Invoice.Status.FINALIZED and inv.number == "INV-000001"
    assert inv.issued_at == utc(2026, 1, 4) and inv.due_at == utc(2026, 2, 3)
