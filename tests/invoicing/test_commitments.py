"""Minimum commitments: the worked example of DESIGN.md "Commitments and progressive billing" (Lago's), the
true-up of a part period ended at once, and a draft recalculated with its true-up."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from catalog.models import Price
from invoicing.models import Invoice, InvoiceLine
from invoicing.services import billing_run_execute, invoice_recalculate, subscription_cancel
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.factories.invoicing import events_create
from tests.factories.metering import MeterFactory

from .helpers import start, utc

pytestmark = pytest.mark.django_db


def committed_plan(*, fee_timing=Price.Timing.IN_ARREARS, commitment="10000.00"):
    """100.00/month (timing as asked), 1.00 per unit counted, minimum commitment 10,000.00 a month."""
    version = PlanVersionFactory(published=True, number=1, minimum_commitment=Decimal(commitment))
    meter = MeterFactory(key=f"units-{version.plan.key}", event_name=f"unit_{version.plan.key}")
    PriceFactory(plan_version=version, name="Platform", amount=Decimal("100.00"), timing=fee_timing, position=0)
    PriceFactory(
        plan_version=version, per_unit=True, name="Units", unit_amount=Decimal("1.00"), meter=meter, position=1
    )
    return version, meter


def boundary_invoice(sub, at) -> Invoice:
    return Invoice.objects.get(subscription=sub, billing_boundary_at=at)


def test_lago_commitment_example_partial_then_full_month():
    version, meter = committed_plan()
    customer = CustomerFactory(external_id="lago-commit")
    sub = start(customer, version.plan, utc(2024, 2, 28, 10))
    events_create(customer_external_id="lago-commit", event_name=meter.event_name, count=10, start=utc(2024, 2, 28, 12))
    billing_run_execute(now=utc(2024, 3, 1))
    march = boundary_invoice(sub, utc(2024, 3, 1))
    fee, usage, commitment = march.lines.order_by("position")
    # Feb 28 and 29 of 29 days (2024 is a leap year): fee 100.00 x 2/29 = 6.8966 -> 6.90; usage 10 x 1.00 = 10.00.
    assert (fee.kind, fee.amount) == (InvoiceLine.Kind.PRORATION, Decimal("6.90"))
    assert (usage.kind, usage.amount) == (InvoiceLine.Kind.USAGE, Decimal("10.00"))
    # Commitment 10,000.00 x 2/29 = 689.655 -> 689.66; charges 6.90 + 10.00 = 16.90; true-up 689.66 - 16.90 = 672.76.
    assert (commitment.kind, commitment.amount) == (InvoiceLine.Kind.COMMITMENT, Decimal("672.76"))
    assert commitment.details["explanation"] == "commitment 10,000.00 x 2/29 = 689.66; charges 16.90; true-up 672.76"
    assert (commitment.period_start, commitment.period_end) == (utc(2024, 2, 28, 10), utc(2024, 3, 1))
    assert commitment.plan_version == version
    # 6.90 + 10.00 + 672.76 = 689.66, untaxed.
    assert (march.subtotal, march.total) == (Decimal("689.66"), Decimal("689.66"))

    billing_run_execute(now=utc(2024, 4, 1))
    april = boundary_invoice(sub, utc(2024, 4, 1))
    # March, a full month with no usage: fee 100.00, usage 0.00, true-up 10,000.00 - 100.00 = 9,900.00.
    amounts = {line.kind: line.amount for line in april.lines.all()}
    assert amounts == {
        InvoiceLine.Kind.FIXED: Decimal("100.00"),
        InvoiceLine.Kind.USAGE: Decimal("0.00"),
        InvoiceLine.Kind.COMMITMENT: Decimal("9900.00"),
    }
    why = april.lines.get(kind=InvoiceLine.Kind.COMMITMENT).details["explanation"]
    assert why == "commitment 10,000.00; charges 100.00; true-up 9,900.00"
    assert april.total == Decimal("10000.00")


def test_no_true_up_when_charges_reach_the_commitment():
    version, meter = committed_plan(commitment="150.00")
    customer = CustomerFactory(external_id="big-user")
    sub = start(customer, version.plan, utc(2024, 3, 1))
    events_create(customer_external_id="big-user", event_name=meter.event_name, count=60, start=utc(2024, 3, 2))
    billing_run_execute(now=utc(2024, 4, 1))
    april = boundary_invoice(sub, utc(2024, 4, 1))
    # Fee 100.00 + usage 60.00 = 160.00 >= 150.00: no commitment line.
    assert not april.lines.filter(kind=InvoiceLine.Kind.COMMITMENT).exists()
    assert april.total == Decimal("160.00")


def test_fees_billed_in_advance_count_toward_the_period_commitment():
    version, meter = committed_plan(fee_timing=Price.Timing.IN_ADVANCE, commitment="300.00")
    customer = CustomerFactory(external_id="advance")
    sub = start(customer, version.plan, utc(2024, 3, 1))
    events_create(customer_external_id="advance", event_name=meter.event_name, count=20, start=utc(2024, 3, 2))
    billing_run_execute(now=utc(2024, 4, 1))
    april = boundary_invoice(sub, utc(2024, 4, 1))
    commitment = april.lines.get(kind=InvoiceLine.Kind.COMMITMENT)
    # March's charges: its fee 100.00 billed in advance on the Mar 1 start invoice + usage 20.00 = 120.00;
    # true-up 300.00 - 120.00 = 180.00. The Apr 1 invoice also carries April's fee in advance (100.00).
    assert commitment.amount == Decimal("180.00")
    assert commitment.details["charges"] == "120.00"
    assert april.total == Decimal("20.00") + Decimal("180.00") + Decimal("100.00")


def test_cancel_now_trues_up_the_part_period():
    version, meter = committed_plan(commitment="3100.00")
    customer = CustomerFactory(external_id="leaver")
    sub = start(customer, version.plan, utc(2024, 3, 1))
    events_create(customer_external_id="leaver", event_name=meter.event_name, count=5, start=utc(2024, 3, 2))
    subscription_cancel(subscription=sub, at="now", now=utc(2024, 3, 11))
    cancel = Invoice.objects.get(subscription=sub, reason=Invoice.Reason.CANCEL)
    # Mar 1 -> Mar 11 is 10 of 31 days: fee 100.00 x 10/31 = 32.26; usage 5.00; commitment 3,100.00 x 10/31 =
    # 1,000.00; true-up 1,000.00 - 37.26 = 962.74.
    commitment = cancel.lines.get(kind=InvoiceLine.Kind.COMMITMENT)
    assert commitment.amount == Decimal("962.74")
    assert commitment.details["explanation"] == (
        "commitment 3,100.00 x 10/31 = 1,000.00; charges 37.26; true-up 962.74"
    )
    assert cancel.total == Decimal("1000.00")


def test_recalculated_draft_keeps_its_true_up():
    version, meter = committed_plan(commitment="500.00")
    customer = CustomerFactory(external_id="grace", invoice_grace_days=3)
    sub = start(customer, version.plan, utc(2024, 3, 1))
    events_create(customer_external_id="grace", event_name=meter.event_name, count=10, start=utc(2024, 3, 2))
    billing_run_execute(now=utc(2024, 4, 1))
    april = boundary_invoice(sub, utc(2024, 4, 1))
    assert april.status == Invoice.Status.DRAFT
    # 500.00 - (100.00 + 10.00) = 390.00.
    assert april.lines.get(kind=InvoiceLine.Kind.COMMITMENT).amount == Decimal("390.00")
    # 15 late events in March: usage 25.00, true-up 500.00 - 125.00 = 375.00; total stays 500.00.
    events_create(
        customer_external_id="grace", event_name=meter.event_name, count=15, start=utc(2024, 3, 20), prefix="late"
    )
    invoice_recalculate(invoice=april, now=utc(2024, 4, 1) + timedelta(hours=1))
    april.refresh_from_db()
    assert april.lines.get(kind=InvoiceLine.Kind.COMMITMENT).amount == Decimal("375.00")
    assert april.total == Decimal("500.00")
