"""Clay's Starter plan end to end: subscription_start, then run_billing's service at each month's start."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from invoicing.services import billing_run_execute, subscription_start
from metering.models import Meter
from tests.factories.catalog import PlanCreditGrantFactory, PlanFactory, PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.factories.metering import EventFactory, MeterFactory
from tests.wallets.conftest import assert_ledger_whole
from wallets.models import Wallet

pytestmark = pytest.mark.django_db


def test_clay_through_the_boundary():
    # $1 per unit of usage, paid by plan credits at 1 credit = $1. January uses 1,000 -> the January invoice
    # takes 1,000 credits, 1,000 roll over: 3,000 held in February; nothing used -> 4,000 in March and April.
    plan = PlanFactory(currency="USD")
    version = PlanVersionFactory(plan=plan, published=True)
    meter = MeterFactory(aggregation=Meter.Aggregation.SUM, field="units", event_name="tokens")
    PriceFactory(plan_version=version, per_unit=True, meter=meter, unit_amount=Decimal(1))
    PlanCreditGrantFactory(plan_version=version, credits=Decimal(2000), rollover_cap=Decimal(2000))
    customer = CustomerFactory(external_id="clay")
    jan = datetime(2026, 1, 1, tzinfo=UTC)
    subscription_start(customer=customer, plan=plan, start_at=jan, billing="calendar", pinned_version=None, now=jan)
    EventFactory(
        customer_external_id="clay",
        event_name="tokens",
        timestamp=datetime(2026, 1, 10, tzinfo=UTC),
        properties={"units": 1000},
    )
    held = []
    for month in (2, 3, 4):
        billing_run_execute(now=datetime(2026, month, 1, tzinfo=UTC))
        held.append(Wallet.objects.get(customer=customer).balance)
    assert held == [Decimal(3000), Decimal(4000), Decimal(4000)]
    from invoicing.models import Invoice

    january = Invoice.objects.get(billing_boundary_at=datetime(2026, 2, 1, tzinfo=UTC))
    assert (january.total, january.credits_applied, january.amount_due) == (Decimal(1000), Decimal(1000), Decimal(0))
    assert_ledger_whole(Wallet.objects.get(customer=customer))
