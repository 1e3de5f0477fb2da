"""No N+1 in the finance lists: the number of queries does not grow with the rows shown."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from invoicing.models import Invoice, InvoiceLine
from tests.factories.customers import TaxRateFactory, subscribe
from tests.factories.metering import EventFactory
from wallets.services import wallet_create

pytestmark = pytest.mark.django_db


def _rows(n: int) -> None:
    vat = TaxRateFactory()
    for _ in range(n):
        sub = subscribe(start_at=datetime(2026, 1, 1, tzinfo=UTC))
        sub.customer.tax_rates.add(vat)
        invoice = Invoice.objects.create(
            customer=sub.customer,
            subscription=sub,
            currency="USD",
            total=Decimal("10.00"),
            subtotal=Decimal("10.00"),
            amount_due=Decimal("10.00"),
            period_start=sub.current_period_start,
            period_end=sub.current_period_end,
            billing_boundary_at=sub.start_at,
            reason=Invoice.Reason.START,
        )
        InvoiceLine.objects.create(invoice=invoice, kind="fixed", description="Fee", amount=Decimal("10.00"))
        wallet_create(customer=sub.customer, name="Credits", currency="USD", conversion_rate=Decimal("1"))
        EventFactory(customer_external_id=sub.customer.external_id)


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize(
    "url",
    [
        "/admin/invoicing/invoice/",
        "/admin/customers/customer/",
        "/admin/customers/subscription/",
        "/admin/wallets/wallet/",
        "/admin/metering/event/",
        "/admin/catalog/planversion/",
        "/admin/catalog/plan/",
        "/admin/catalog/price/",
        "/admin/catalog/feature/",
        "/admin/customers/taxrate/",
        "/admin/metering/meter/",
    ],
)
def test_changelist_queries_do_not_grow_with_rows(admin_client, url):
    _rows(2)
    few = _queries(admin_client, url)
    _rows(20)
    many = _queries(admin_client, url)
    assert many == few, f"{url}: {few} queries for 2 rows, {many} for 22"
