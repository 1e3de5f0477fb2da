"""Admin for commitments and progressive billing: the version editor's fields, the invoice page's links between
progressive invoices and their period invoice, and the customer page's progressive billing block."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from catalog.models import PlanVersion
from invoicing.models import Invoice
from invoicing.services import billing_run_execute
from tests.factories.catalog import PlanFactory
from tests.factories.customers import CustomerFactory

from .helpers import start, utc
from .test_progressive import progressive_plan, use

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


def test_invoice_pages_link_progressive_invoices_and_their_period_invoice(admin_client):
    version, meter = progressive_plan([("200.00", False)])
    sub = start(CustomerFactory(external_id="links"), version.plan, utc(2022, 12, 1))
    use(sub.customer, meter, 1_000_000, utc(2022, 12, 6, 9), "a")
    billing_run_execute(now=utc(2022, 12, 6, 10))
    billing_run_execute(now=utc(2023, 1, 1))
    progressive = Invoice.objects.get(subscription=sub, reason=Invoice.Reason.PROGRESSIVE)
    period = Invoice.objects.get(subscription=sub, billing_boundary_at=utc(2023, 1, 1))
    page = admin_client.get(f"/admin/invoicing/invoice/{progressive.pk}/change/").content.decode()
    assert f"/admin/invoicing/invoice/{period.pk}/change/" in page and "Threshold $200.00 reached" in page
    page = admin_client.get(f"/admin/invoicing/invoice/{period.pk}/change/").content.decode()
    assert f"/admin/invoicing/invoice/{progressive.pk}/change/" in page
    # The period invoice's credit and the usage line's why naming the progressive invoice.
    assert "$200.00 already billed by this period" in page
    assert f"of this usage was billed by progressive invoice {progressive.number}" in page


def test_customer_page_shows_usage_billed_so_far_and_the_next_threshold(admin_client):
    now = timezone.now()
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    version, meter = progressive_plan([("2.00", False), ("10.00", True)])
    sub = start(CustomerFactory(external_id="c360"), version.plan, month)
    use(sub.customer, meter, 15_000, month, "a")  # 3.00 reaches 2.00
    billing_run_execute(now=max(now - timedelta(seconds=1), month + timedelta(seconds=1)))
    page = admin_client.get(f"/admin/customers/customer/{sub.customer.pk}/change/").content.decode()
    assert "Usage billed so far this period" in page
    # 3.00 billed by the progressive invoice; next threshold: 2.00 + 10.00 = 12.00.
    assert "$3.00" in page and "$12.00" in page


def test_version_editor_saves_commitment_and_thresholds_through_the_service(admin_client):
    plan = PlanFactory(key="editor")
    data = {
        "plan": plan.pk,
        "effective_from_0": "2026-01-01",
        "effective_from_1": "00:00:00",
        "notes": "",
        "minimum_commitment": "1000",
        "fixed_thresholds": "200, 500",
        "recurring_threshold": "1000",
    }
    for prefix in ("prices", "entitlements", "credit_grants"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    response = admin_client.post("/admin/catalog/planversion/add/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    version = PlanVersion.objects.get(plan=plan)
    assert version.minimum_commitment == Decimal("1000")
    assert version.progressive_thresholds == [
        {"amount": "200", "recurring": False},
        {"amount": "500", "recurring": False},
        {"amount": "1000", "recurring": True},
    ]
    data["fixed_thresholds"] = "500, 200"
    response = admin_client.post("/admin/catalog/planversion/add/", data)
    assert response.status_code == 200 and "thresholds increase" in response.content.decode()


def test_invoice_document_shows_the_progressive_credit_before_tax():
    from invoicing.pdf import invoice_context

    version, meter = progressive_plan([("200.00", False)])
    sub = start(CustomerFactory(external_id="doc"), version.plan, utc(2022, 12, 1))
    use(sub.customer, meter, 1_000_000, utc(2022, 12, 6, 9), "a")
    billing_run_execute(now=utc(2022, 12, 6, 10))
    billing_run_execute(now=utc(2023, 1, 1))
    period = Invoice.objects.get(subscription=sub, billing_boundary_at=utc(2023, 1, 1))
    money = invoice_context(period)["money"]
    # Seat 31.00 + 1,000,000 x 0.0002 = 200.00 -> subtotal 231.00; credit 200.00; total 31.00 (no tax).
    assert (money["subtotal"], money["progressive_billing_credit"], money["total"]) == ("$231.00", "$200.00", "$31.00")
