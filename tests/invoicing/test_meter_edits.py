"""A meter's filters changed in the database count at once everywhere invoice lines are built from events.

Nothing keeps prices, meters or filters beyond the batch of a run that read them, so cancel-now, draft
recalculation and the upcoming-invoice preview see an edit made a moment before.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from catalog.models import Price
from customers.models import Subscription
from invoicing.models import Invoice, InvoiceLine
from invoicing.selectors import upcoming_invoice_preview
from invoicing.services import billing_run_execute, invoice_recalculate, subscription_cancel
from invoicing.services.boundary import subscription_boundary_bill_locked
from invoicing.services.context import boundary_context_read
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.factories.invoicing import events_create
from tests.factories.metering import MeterFactory, MeterFilterFactory

from .helpers import invoices_of, start, utc

FEB1 = utc(2026, 2, 1)
FEB10 = utc(2026, 2, 10)


def _chat_plan():
    """$1.00 per chat message in arrears, counting only messages whose ``model`` is ``gpt-4o``."""
    version = PlanVersionFactory(published=True, number=1)
    meter = MeterFactory(key="chat-messages", name="Chat messages", event_name="chat", aggregation="count")
    MeterFilterFactory(meter=meter, property="model", values=["gpt-4o"])
    PriceFactory(
        plan_version=version,
        name="Messages",
        model=Price.Model.PER_UNIT,
        timing=Price.Timing.IN_ARREARS,
        amount=None,
        unit_amount=Decimal("1.00"),
        meter=meter,
    )
    return version, meter


def _chat(customer: str, start, prefix: str) -> None:
    """3 messages on gpt-4o and 2 on gpt-4o-mini from ``start`` (real events, as ingestion stores them)."""
    events_create(
        customer_external_id=customer,
        event_name="chat",
        count=3,
        start=start,
        prefix=f"{prefix}-big",
        properties={"model": "gpt-4o"},
    )
    events_create(
        customer_external_id=customer,
        event_name="chat",
        count=2,
        start=start,
        prefix=f"{prefix}-mini",
        properties={"model": "gpt-4o-mini"},
    )


def _admin_sets_filter(admin_client, meter, values: str) -> None:
    """The meter's filter row changes between two reads (here written directly: the admin now refuses to edit a
    meter that a published version prices, docs/billing-rules.md, so an operator's correction in the database is
    the one way it still changes). What matters is that nothing kept the old filter."""
    row = meter.filters.get()
    row.values = [v.strip() for v in values.split(",")]
    row.save(update_fields=["values"])


def _usage_quantities(lines) -> list[Decimal]:
    return [line.quantity for line in lines if line.kind == InvoiceLine.Kind.USAGE]


@pytest.mark.django_db
def test_a_meter_filter_edited_in_the_admin_counts_in_preview_recalculation_and_cancel_now(admin_client):
    version, meter = _chat_plan()
    customer = CustomerFactory(external_id="chatty", invoice_grace_days=30)  # the Feb 1 invoice stays a draft
    sub = start(customer, version.plan, utc(2026, 1, 1))
    _chat("chatty", utc(2026, 1, 10), "jan")
    _chat("chatty", utc(2026, 2, 3), "feb")
    billing_run_execute(now=FEB1)
    feb1 = invoices_of(sub)[1]
    # Before the edit: only the 3 gpt-4o messages count, in January's invoice and in February's preview.
    assert feb1.status == Invoice.Status.DRAFT and _usage_quantities(feb1.lines.all()) == [Decimal(3)]
    assert feb1.total == Decimal("3.00")
    assert _usage_quantities(upcoming_invoice_preview(customer=customer, now=FEB10).lines) == [Decimal(3)]

    _admin_sets_filter(admin_client, meter, "gpt-4o,gpt-4o-mini")

    # After: 3 + 2 = 5 messages count, at $1.00 each.
    preview = upcoming_invoice_preview(customer=customer, now=FEB10)
    assert _usage_quantities(preview.lines) == [Decimal(5)] and preview.total == Decimal("5.00")
    invoice_recalculate(invoice=feb1, now=FEB10)
    feb1.refresh_from_db()
    assert _usage_quantities(feb1.lines.all()) == [Decimal(5)] and feb1.total == Decimal("5.00")
    subscription_cancel(subscription=Subscription.objects.get(pk=sub.pk), at="now", now=FEB10)
    cancel = invoices_of(sub)[2]
    assert (cancel.period_start, cancel.period_end) == (FEB1, FEB10)
    assert _usage_quantities(cancel.lines.all()) == [Decimal(5)] and cancel.total == Decimal("5.00")


@pytest.mark.django_db
def test_a_run_after_the_edit_bills_with_the_new_filter(admin_client):
    version, meter = _chat_plan()
    customer = CustomerFactory(external_id="chatty-run")
    sub = start(customer, version.plan, utc(2026, 1, 1))
    _chat("chatty-run", utc(2026, 1, 10), "jan")
    _chat("chatty-run", utc(2026, 2, 3), "feb")
    billing_run_execute(now=FEB1)
    assert _usage_quantities(invoices_of(sub)[1].lines.all()) == [Decimal(3)]  # gpt-4o only
    _admin_sets_filter(admin_client, meter, "gpt-4o,gpt-4o-mini")
    billing_run_execute(now=utc(2026, 3, 1))
    assert _usage_quantities(invoices_of(sub)[2].lines.all()) == [Decimal(5)]  # both models


@pytest.mark.django_db
def test_a_boundary_context_serves_one_boundary_only():
    """A boundary may create the plan-credit wallet, so the next one must read its own context."""
    from django.db import transaction

    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("5"))
    sub = start(CustomerFactory(), version.plan, utc(2026, 1, 1))
    with transaction.atomic():
        locked = (
            Subscription.objects.select_for_update().select_related("customer", "plan", "plan_version").get(pk=sub.pk)
        )
        context = boundary_context_read(subscription=locked)
        assert context.boundary_at == FEB1 and context.has_wallets is False
        assert subscription_boundary_bill_locked(subscription=locked, now=utc(2026, 3, 1), context=context) is not None
        assert locked.current_period_end == utc(2026, 3, 1)
        with pytest.raises(ValueError, match="boundary context"), transaction.atomic():
            subscription_boundary_bill_locked(subscription=locked, now=utc(2026, 3, 1), context=context)
        fresh = boundary_context_read(subscription=locked)
        assert subscription_boundary_bill_locked(subscription=locked, now=utc(2026, 3, 1), context=fresh) is not None
    assert [i.billing_boundary_at for i in invoices_of(sub)] == [utc(2026, 1, 1), FEB1, utc(2026, 3, 1)]
