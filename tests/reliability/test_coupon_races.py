"""Two invoices of one customer created and finalized at once never spend more of a fixed coupon than it has
(real threads, real row locks: the customer's lock serializes the applied coupon's reads and writes)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from invoicing.models import AppliedCoupon, Coupon, Invoice, InvoiceCoupon
from invoicing.services.boundary import subscription_bill_once
from invoicing.services.coupons import coupon_create, customer_coupon_apply
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.invoicing.helpers import start

from .conftest import race

JAN1 = datetime(2026, 1, 1, tzinfo=UTC)
FEB1 = datetime(2026, 2, 1, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_two_boundaries_of_one_customer_at_once_spend_the_fixed_coupon_once():
    # Two plans of $60.00/month in advance for one customer; a $100.00 once coupon applied after January's invoices.
    customer = CustomerFactory()
    subs = []
    for _ in range(2):
        version = PlanVersionFactory(published=True, number=1)
        PriceFactory(plan_version=version, amount=Decimal("60.00"))
        subs.append(start(customer, version.plan, JAN1))
    coupon = coupon_create(code="RACE100", kind="fixed", amount=Decimal("100.00"), currency="USD")
    customer_coupon_apply(customer=customer, coupon=coupon, now=JAN1)

    results = race(*(lambda s=s: subscription_bill_once(subscription_id=s.pk, now=FEB1) for s in subs))

    assert all(isinstance(r, tuple) and r[0] for r in results), results
    feb = list(Invoice.objects.filter(billing_boundary_at=FEB1).order_by("created_at", "id"))
    assert len(feb) == 2 and all(i.status in ("finalized", "paid") and i.number for i in feb)
    # Whichever ran first took $60.00 (all of its lines), the other the $40.00 left: $100.00 in all, never $120.00.
    assert sorted(i.discount for i in feb) == [Decimal("40.00"), Decimal("60.00")]
    assert sorted(i.total for i in feb) == [Decimal("0.00"), Decimal("20.00")]
    applied = AppliedCoupon.objects.get(coupon=Coupon.objects.get(code="RACE100"))
    assert (applied.remaining_amount, applied.status) == (Decimal("0.00"), "used")
    assert sum(r.amount for r in InvoiceCoupon.objects.filter(applied_coupon=applied)) == Decimal("100.00")
