"""``Invoice.reason``: stored by every creation path, backfilled by its migration, used by recalculation."""

from __future__ import annotations

import importlib
from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction

from catalog.models import Price
from customers.models import Subscription
from invoicing.models import Invoice, InvoiceLine
from invoicing.services import billing_run_execute, invoice_recalculate, subscription_cancel
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.factories.invoicing import InvoiceFactory

from .helpers import invoices_of, start, utc

pytestmark = pytest.mark.django_db

FEB1 = utc(2026, 2, 1)
FEB10_NOON = utc(2026, 2, 10, 12)


def _plan(*, interval: str = "month"):
    """$31.00 platform fee in advance and $28.00 support fee in arrears, per month."""
    version = PlanVersionFactory(published=True, number=1, plan__interval=interval)
    PriceFactory(plan_version=version, name="Platform", amount=Decimal("31.00"), position=0)
    PriceFactory(
        plan_version=version, name="Support", amount=Decimal("28.00"), timing=Price.Timing.IN_ARREARS, position=1
    )
    return version


def _lines(invoice: Invoice) -> list[tuple[str, Decimal]]:
    return [(line.description.split(" — ")[0], line.amount) for line in invoice.lines.order_by("position")]


def _start_bill_cancel(external_id: str, *, grace: int = 30) -> Subscription:
    """Calendar start Jan 15 10:00, the Feb 1 run, then canceled at once on Feb 10 12:00: three invoices."""
    customer = CustomerFactory(external_id=external_id, invoice_grace_days=grace)
    sub = start(customer, _plan().plan, utc(2026, 1, 15, 10))
    billing_run_execute(now=FEB1)
    subscription_cancel(subscription=Subscription.objects.get(pk=sub.pk), at="now", now=FEB10_NOON)
    return sub


def test_every_subscription_invoice_stores_why_it_was_issued():
    sub = _start_bill_cancel("reasons")
    started, boundary, canceled = invoices_of(sub)
    assert [i.reason for i in (started, boundary, canceled)] == ["start", "boundary", "cancel"]
    assert [i.kind for i in (started, boundary, canceled)] == ["subscription"] * 3


def test_recalculation_rebuilds_each_draft_by_its_stored_reason():
    sub = _start_bill_cancel("recalc")
    started, boundary, canceled = invoices_of(sub)
    # Start: Platform 31.00 x 17/31 days (Jan 15..31) = 17.00.
    # Feb 1: Support in arrears 28.00 x 17/31 = 15.354... -> 15.35, Platform for February in advance 31.00.
    # Cancel on Feb 10 12:00: Support in arrears for Feb 1..9, 28.00 x 9/28 = 9.00; nothing in advance.
    expected = {
        started.pk: [("Platform", Decimal("17.00"))],
        boundary.pk: [("Support", Decimal("15.35")), ("Platform", Decimal("31.00"))],
        canceled.pk: [("Support", Decimal("9.00"))],
    }
    for invoice in (started, boundary, canceled):
        assert invoice.status == Invoice.Status.DRAFT and _lines(invoice) == expected[invoice.pk]
        invoice_recalculate(invoice=invoice, now=utc(2026, 2, 11))
        invoice.refresh_from_db()
        assert _lines(invoice) == expected[invoice.pk]
    # The reason, not the dates, decides: the same Feb 1 dates rebuilt as a cancellation lose the advance fee.
    Invoice.objects.filter(pk=boundary.pk).update(reason=Invoice.Reason.CANCEL)
    boundary.refresh_from_db()
    invoice_recalculate(invoice=boundary, now=utc(2026, 2, 11))
    assert _lines(boundary) == [("Support", Decimal("15.35"))]


def test_an_invoice_that_is_not_a_period_invoice_keeps_its_lines_on_recalculation():
    invoice = InvoiceFactory(customer=CustomerFactory(), reason=Invoice.Reason.ONE_OFF)
    InvoiceLine.objects.create(invoice=invoice, kind="adjustment", description="Set-up work", amount=Decimal("120.00"))
    invoice_recalculate(invoice=invoice, now=FEB1)
    assert _lines(invoice) == [("Set-up work", Decimal("120.00"))]


def test_an_invoice_without_a_known_reason_is_refused_by_the_database():
    with pytest.raises(IntegrityError, match="invoice_reason_known"), transaction.atomic():
        Invoice.objects.create(customer=CustomerFactory(), currency="USD")


def test_migration_backfills_the_reason_with_the_rule_recalculation_used():
    """0003 writes, from the dates and kinds, the reasons the creation paths now store."""
    backfill = importlib.import_module("invoicing.migrations.0005_backfill_invoice_reason").backfill
    calendar = _start_bill_cancel("backfill-calendar", grace=0)
    # Anniversary from Jan 31 10:00: Feb 28 10:00 boundary, then canceled at once on Mar 5.
    anniversary = start(CustomerFactory(), _plan().plan, utc(2026, 1, 31, 10), billing="anniversary")
    billing_run_execute(now=utc(2026, 3, 1))
    subscription_cancel(subscription=Subscription.objects.get(pk=anniversary.pk), at="now", now=utc(2026, 3, 5))
    # A calendar start on a boundary (a full first period), ended at its period's end.
    on_boundary = start(CustomerFactory(), _plan(interval="year").plan, utc(2026, 1, 1))
    Subscription.objects.filter(pk=on_boundary.pk).update(cancel_at_period_end=True)
    billing_run_execute(now=utc(2027, 1, 1))
    purchase = InvoiceFactory(kind=Invoice.Kind.CREDIT_PURCHASE, reason=Invoice.Reason.CREDIT_PURCHASE)
    one_off = InvoiceFactory()
    stored = dict(Invoice.objects.values_list("pk", "reason"))
    assert sorted(stored.values()) == sorted(
        ["start", "boundary", "cancel"] * 2 + ["start", "boundary", "credit_purchase", "one_off"]
    )
    assert [i.reason for i in invoices_of(on_boundary)] == ["start", "boundary"]
    assert [i.reason for i in invoices_of(anniversary)] == ["start", "boundary", "cancel"]
    assert (purchase.reason, one_off.reason) == ("credit_purchase", "one_off")
    assert [i.reason for i in invoices_of(calendar)] == ["start", "boundary", "cancel"]

    Invoice.objects.update(reason=Invoice.Reason.BOUNDARY)  # what 0002 gives every existing row
    backfill(apps, None)
    assert dict(Invoice.objects.values_list("pk", "reason")) == stored


def test_admin_filters_and_shows_the_reason(client):
    client.force_login(User.objects.create_superuser("finance", "finance@example.com", "pw"))
    sub = _start_bill_cancel("admin-reason", grace=0)
    canceled = invoices_of(sub)[2]
    page = client.get("/admin/invoicing/invoice/", {"reason__exact": "cancel"})
    assert page.status_code == 200
    assert list(page.context["cl"].result_list) == [canceled]
    assert "Canceled at once" in page.content.decode()  # the filter's choice
    detail = client.get(f"/admin/invoicing/invoice/{canceled.pk}/change/").content.decode()
    assert "Reason" in detail and "Canceled at once" in detail


def test_api_invoice_output_names_the_reason(api):
    sub = _start_bill_cancel("api-reason", grace=0)
    body = api.get("/api/v1/invoices", {"subscription": str(sub.pk)}).json()
    assert sorted(item["reason"] for item in body["results"]) == ["boundary", "cancel", "start"]
    assert api.get("/api/v1/customers/api-reason/upcoming_invoice").json()["reason"] is None  # nothing active
