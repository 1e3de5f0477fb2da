"""Invoicing factories: plans with the prices the worked examples use, events in bulk, simple invoices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from catalog.models import Price, Tier
from invoicing.models import Invoice, InvoiceLine
from metering.models import Event

from .catalog import PlanFactory, PlanVersionFactory, PriceFactory
from .customers import CustomerFactory
from .metering import MeterFactory


def plan_with_api_calls(*, fee: str = "99", included: int = 5000, rate: str = "0.01", effective_from=None):
    """$99/month in advance including 5,000 API calls, then $0.01 per call (graduated: 0–5,000 at 0)."""
    version = PlanVersionFactory(
        published=True, number=1, effective_from=effective_from or datetime(2020, 1, 1, tzinfo=UTC)
    )
    meter = MeterFactory(
        key=f"api-calls-{version.plan.key}", name="API calls", event_name=f"api_call_{version.plan.key}"
    )
    PriceFactory(plan_version=version, name="Platform fee", amount=Decimal(fee), position=0)
    usage = PriceFactory(
        plan_version=version,
        name="API calls",
        model=Price.Model.TIERED,
        tier_mode=Price.TierMode.GRADUATED,
        timing=Price.Timing.IN_ARREARS,
        amount=None,
        meter=meter,
        position=1,
    )
    Tier.objects.create(price=usage, position=0, up_to=Decimal(included), unit_amount=Decimal("0"))
    Tier.objects.create(price=usage, position=1, up_to=None, unit_amount=Decimal(rate))
    return version, meter


def events_create(
    *, customer_external_id: str, event_name: str, count: int, start: datetime, prefix: str = "e", properties=None
):
    """``count`` events, one a minute from ``start`` (bulk insert, as a batch ingestion would store them)."""
    Event.objects.bulk_create(
        [
            Event(
                customer_external_id=customer_external_id,
                event_id=f"{prefix}-{i}",
                event_name=event_name,
                timestamp=start + timedelta(seconds=i),
                properties=properties or {},
            )
            for i in range(count)
        ],
        batch_size=5000,
    )


class InvoiceFactory(DjangoModelFactory):
    """A draft one-off invoice with no lines; add lines with ``InvoiceLineFactory``."""

    class Meta:
        model = Invoice

    customer = factory.SubFactory(CustomerFactory)
    currency = "USD"
    kind = Invoice.Kind.ONE_OFF
    reason = Invoice.Reason.ONE_OFF
    status = Invoice.Status.DRAFT


class InvoiceLineFactory(DjangoModelFactory):
    class Meta:
        model = InvoiceLine

    invoice = factory.SubFactory(InvoiceFactory)
    kind = InvoiceLine.Kind.ADJUSTMENT
    description = "Adjustment"
    quantity = Decimal("1")
    amount = Decimal("1.00")


__all__ = ["InvoiceFactory", "InvoiceLineFactory", "PlanFactory", "events_create", "plan_with_api_calls"]
