"""Progressive billing: the worked examples of the issue (Lago's), the watch's rules, and the crossing constraint."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from catalog.models import Price
from invoicing.models import Invoice, InvoiceLine
from invoicing.services import billing_run_execute
from invoicing.services.progressive import progressive_state_read, progressive_watch
from metering.models import Event, Meter
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory, TaxRateFactory
from tests.factories.metering import MeterFactory

from .helpers import start, utc

pytestmark = pytest.mark.django_db

DEC_2022 = utc(2022, 12, 1)


def progressive_plan(thresholds, *, fee="31.00", unit="0.0002"):
    """31.00/month in arrears and ``unit`` per unit of a summed ``units`` property, with ``thresholds``."""
    version = PlanVersionFactory(
        published=True,
        number=1,
        progressive_thresholds=[{"amount": a, "recurring": r} for a, r in thresholds],
    )
    meter = MeterFactory(
        key=f"tokens-{version.plan.key}",
        event_name=f"tokens_{version.plan.key}",
        aggregation=Meter.Aggregation.SUM,
        field="units",
    )
    PriceFactory(plan_version=version, name="Seat", amount=Decimal(fee), timing=Price.Timing.IN_ARREARS, position=0)
    PriceFactory(plan_version=version, per_unit=True, name="Tokens", unit_amount=Decimal(unit), meter=meter, position=1)
    return version, meter


def use(customer, meter, units, at, key):
    Event.objects.create(
        customer_external_id=customer.external_id,
        event_id=key,
        event_name=meter.event_name,
        timestamp=at,
        properties={"units": units},
    )


def progressive_invoices(sub) -> list[Invoice]:
    return list(Invoice.objects.filter(subscription=sub, reason=Invoice.Reason.PROGRESSIVE).order_by("id"))


def test_lago_example_one_fixed_threshold():
    version, meter = progressive_plan([("200.00", False)])
    customer = CustomerFactory(external_id="gpu")
    sub = start(customer, version.plan, DEC_2022)

    use(customer, meter, 1_000_000, utc(2022, 12, 6, 9), "a")
    billing_run_execute(now=utc(2022, 12, 6, 10))
    [first] = progressive_invoices(sub)
    # 1,000,000 units x 0.0002 = 200.00: lifetime 200.00 reaches the 200.00 threshold -> invoice 200.00.
    assert (first.kind, first.subtotal, first.progressive_billing_credit, first.total) == (
        Invoice.Kind.PROGRESSIVE,
        Decimal("200.00"),
        Decimal("0.00"),
        Decimal("200.00"),
    )
    assert first.status in (Invoice.Status.FINALIZED, Invoice.Status.PAID) and first.number
    assert (first.progressive_threshold, first.progressive_threshold_reached) == (Decimal("200"), Decimal("200"))
    assert (first.period_start, first.period_end) == (DEC_2022, utc(2022, 12, 6, 10))
    [line] = first.lines.all()
    assert (line.kind, line.quantity, line.amount) == (InvoiceLine.Kind.USAGE, Decimal(1_000_000), Decimal("200.00"))

    use(customer, meter, 1_000_000, utc(2022, 12, 16, 9), "b")
    billing_run_execute(now=utc(2022, 12, 16, 10))
    # Lifetime 400.00: the only (fixed) threshold has fired; no new invoice.
    assert len(progressive_invoices(sub)) == 1

    billing_run_execute(now=utc(2023, 1, 1))
    jan = Invoice.objects.get(subscription=sub, billing_boundary_at=utc(2023, 1, 1))
    # Seat 31.00 + tokens 2,000,000 x 0.0002 = 400.00 -> charges 431.00; progressive credit 200.00; total 231.00.
    assert (jan.subtotal, jan.progressive_billing_credit, jan.total) == (
        Decimal("431.00"),
        Decimal("200.00"),
        Decimal("231.00"),
    )
    usage = jan.lines.get(kind=InvoiceLine.Kind.USAGE)
    assert usage.progressive_billing_credit == Decimal("200.00")
    assert usage.details["progressive_invoices"] == [first.number]
    assert first.number in usage.details["progressive_billing_explanation"]

    use(customer, meter, 2_000_000, utc(2023, 1, 10), "c")
    billing_run_execute(now=utc(2023, 2, 1))
    feb = Invoice.objects.get(subscription=sub, billing_boundary_at=utc(2023, 2, 1))
    # January, same usage: 431.00 with no credit (the fixed threshold fired in December, once in a lifetime).
    assert len(progressive_invoices(sub)) == 1
    assert (feb.subtotal, feb.progressive_billing_credit, feb.total) == (Decimal("431.00"), 0, Decimal("431.00"))


def test_lago_example_fixed_and_recurring_thresholds():
    version, meter = progressive_plan([("2.00", False), ("5.00", False), ("7.00", False), ("10.00", True)])
    customer = CustomerFactory(external_id="agent")
    sub = start(customer, version.plan, DEC_2022)
    # 11,000 units x 0.0002 = 2.20; 110,000 units = 22.00. Levels: 2, 5, 7, then 7 + 10k: 17, 27, 37, 47, ...
    steps = [
        (6, 11_000, ["2.20"]),  # lifetime 2.20 reaches 2: bills 2.20
        (11, 11_000, []),  # 4.40: below 5
        (16, 11_000, ["4.40"]),  # 6.60 reaches 5: usage 6.60 - 2.20 billed = 4.40
        (21, 11_000, ["2.20"]),  # 8.80 reaches 7: 8.80 - 6.60 = 2.20
        (26, 110_000, ["22.00"]),  # 30.80 reaches 17 and 27 together: one invoice, 30.80 - 8.80 = 22.00
        (28, 110_000, ["22.00"]),  # 52.80 reaches 37 and 47: 52.80 - 30.80 = 22.00
    ]
    billed = []
    for day, units, expected in steps:
        use(customer, meter, units, utc(2022, 12, day, 8), f"d{day}")
        before = len(billed)
        billing_run_execute(now=utc(2022, 12, day, 9))
        billed = progressive_invoices(sub)
        assert [f"{inv.total:.2f}" for inv in billed[before:]] == expected, day
    assert [(inv.progressive_threshold, inv.progressive_threshold_reached) for inv in billed] == [
        (Decimal(2), Decimal(2)),
        (Decimal(5), Decimal(5)),
        (Decimal(7), Decimal(7)),
        (Decimal(17), Decimal(27)),
        (Decimal(37), Decimal(47)),
    ]
    # Each progressive invoice's credit is what the earlier ones billed: 0, 2.20, 6.60, 8.80, 30.80.
    assert [inv.progressive_billing_credit for inv in billed] == [
        Decimal("0"),
        Decimal("2.20"),
        Decimal("6.60"),
        Decimal("8.80"),
        Decimal("30.80"),
    ]
    billing_run_execute(now=utc(2023, 1, 1))
    jan = Invoice.objects.get(subscription=sub, billing_boundary_at=utc(2023, 1, 1))
    # Seat 31.00 + usage 52.80 = 83.80; credit 2.20 + 4.40 + 2.20 + 22.00 + 22.00 = 52.80; total 31.00.
    assert (jan.subtotal, jan.progressive_billing_credit, jan.total) == (
        Decimal("83.80"),
        Decimal("52.80"),
        Decimal("31.00"),
    )


def test_progressive_invoices_are_taxed_and_the_credit_comes_before_tax():
    version, meter = progressive_plan([("200.00", False)])
    customer = CustomerFactory(external_id="taxed-gpu")
    customer.tax_rates.add(TaxRateFactory(code="vat-20", percentage=Decimal("20")))
    sub = start(customer, version.plan, DEC_2022)
    use(customer, meter, 1_000_000, utc(2022, 12, 6, 9), "a")
    use(customer, meter, 1_000_000, utc(2022, 12, 16, 9), "b")
    progressive_watch(now=utc(2022, 12, 6, 10))  # sees only the first event
    [first] = progressive_invoices(sub)
    # 200.00 + 20% = 240.00.
    assert (first.subtotal, first.tax, first.total) == (Decimal("200.00"), Decimal("40.00"), Decimal("240.00"))
    billing_run_execute(now=utc(2023, 1, 1))
    jan = Invoice.objects.get(subscription=sub, billing_boundary_at=utc(2023, 1, 1))
    # 431.00 - 200.00 credit = 231.00 taxable; tax 46.20; total 277.20.
    assert (jan.subtotal, jan.progressive_billing_credit, jan.tax, jan.total) == (
        Decimal("431.00"),
        Decimal("200.00"),
        Decimal("46.20"),
        Decimal("277.20"),
    )


def test_watch_reads_only_subscriptions_with_thresholds_and_current_periods():
    plain_version, plain_meter = progressive_plan([])
    version, meter = progressive_plan([("1.00", False)])
    watched = start(CustomerFactory(external_id="w"), version.plan, DEC_2022)
    start(CustomerFactory(external_id="p"), plain_version.plan, DEC_2022)
    use(watched.customer, meter, 10_000, utc(2022, 12, 2), "w1")
    use(CustomerFactory.build(external_id="p"), plain_meter, 10_000_000, utc(2022, 12, 2), "p1")
    outcome = progressive_watch(now=utc(2022, 12, 3))
    # One subscription has thresholds; its 10,000 x 0.0002 = 2.00 reaches 1.00: one invoice.
    assert (outcome.evaluated, outcome.crossings, len(outcome.invoices)) == (1, 1, 1)
    # A period already over is the billing run's: the watch at Jan 2 (boundary not billed yet) evaluates nothing.
    assert progressive_watch(now=utc(2023, 1, 2)).evaluated == 0


def test_state_for_the_customer_page():
    version, meter = progressive_plan([("2.00", False), ("10.00", True)])
    sub = start(CustomerFactory(external_id="s"), version.plan, DEC_2022)
    use(sub.customer, meter, 15_000, utc(2022, 12, 2), "s1")
    billing_run_execute(now=utc(2022, 12, 3))
    use(sub.customer, meter, 5_000, utc(2022, 12, 4), "s2")
    sub.refresh_from_db()
    state = progressive_state_read(subscription=sub, now=utc(2022, 12, 5))
    # 20,000 x 0.0002 = 4.00 so far; 3.00 billed on Dec 3 (15,000 units); reached 2, next level 2 + 10 = 12.
    assert (state.current_usage, state.billed_this_period, state.reached, state.next_level) == (
        Decimal("4.00"),
        Decimal("3.00"),
        Decimal("2"),
        Decimal("12.00"),
    )


def test_database_refuses_a_second_invoice_for_one_crossing():
    version, meter = progressive_plan([("1.00", False)])
    sub = start(CustomerFactory(external_id="c"), version.plan, DEC_2022)
    values = {
        "customer": sub.customer,
        "subscription": sub,
        "currency": "USD",
        "reason": Invoice.Reason.PROGRESSIVE,
        "kind": Invoice.Kind.PROGRESSIVE,
        "progressive_threshold": Decimal("1"),
    }
    Invoice.objects.create(**values)
    with pytest.raises(IntegrityError), transaction.atomic():
        Invoice.objects.create(**values)


def test_wallet_credits_pay_progressive_invoices_and_usage_only_wallets_skip_the_credited_usage():
    from wallets.services import wallet_create, wallet_grant_create

    version, meter = progressive_plan([("200.00", False)])
    customer = CustomerFactory(external_id="prepaid")
    wallet = wallet_create(customer=customer, currency="USD", applies_to="usage")
    wallet_grant_create(wallet=wallet, credits=Decimal("1000"), kind="paid", now=utc(2022, 11, 1))
    sub = start(customer, version.plan, DEC_2022)
    use(customer, meter, 1_000_000, utc(2022, 12, 6, 9), "a")
    use(customer, meter, 1_000_000, utc(2022, 12, 16, 9), "b")
    progressive_watch(now=utc(2022, 12, 6, 10))
    [first] = progressive_invoices(sub)
    # The progressive invoice is all usage: 200.00 paid by the wallet's credits.
    assert (first.credits_applied, first.amount_due, first.status) == (Decimal("200.00"), 0, Invoice.Status.PAID)
    billing_run_execute(now=utc(2023, 1, 1))
    jan = Invoice.objects.get(subscription=sub, billing_boundary_at=utc(2023, 1, 1))
    # Usage 400.00 less its 200.00 progressive credit = 200.00 usage-only credits; the seat's 31.00 stays due.
    assert (jan.total, jan.credits_applied, jan.amount_due) == (Decimal("231.00"), Decimal("200.00"), Decimal("31.00"))
