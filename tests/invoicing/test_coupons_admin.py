"""Admin for coupons and one-off invoices: create a coupon, apply it from the customer's page, see the discount
on the invoice page and its PDF, end it; write a one-off invoice from the customer's page."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import User

from invoicing.models import AppliedCoupon, Coupon, Invoice
from invoicing.pdf import invoice_html
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory, TaxRateFactory

from .helpers import invoices_of, start, utc

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("finance", "finance@example.com", "pw"))
    return client


def test_create_coupon_apply_it_and_see_the_discount_explained(admin_client):
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=D("60.00"))
    customer = CustomerFactory(external_id="adm", name="Admin Buyer")
    customer.tax_rates.add(TaxRateFactory(code="vat-20", percentage=D("20")))
    assert admin_client.get("/admin/invoicing/coupon/add/").status_code == 200
    # A bad percentage is shown beside its field; nothing is created.
    bad = admin_client.post(
        "/admin/invoicing/coupon/add/", {"code": "BAD", "kind": "percentage", "percentage": "150", "duration": "once"}
    )
    assert bad.status_code == 200 and "above 0 and at most 100" in bad.content.decode()
    assert not Coupon.objects.exists()
    created = admin_client.post(
        "/admin/invoicing/coupon/add/",
        {
            "code": "LAUNCH100",
            "name": "Launch",
            "kind": "fixed",
            "amount": "100",
            "currency": "USD",
            "duration": "once",
        },
    )
    assert created.status_code == 302, created.content.decode()[:2000]
    coupon = Coupon.objects.get(code="LAUNCH100")
    assert coupon.terms_text == "$100.00 fixed, once"
    assert admin_client.get(f"/admin/invoicing/coupon/{coupon.pk}/change/").status_code == 200

    page = admin_client.get(f"/admin/customers/customer/{customer.pk}/change/").content.decode()
    assert "Apply a coupon" in page and "New one-off invoice" in page
    applied = admin_client.post(f"/admin/invoicing/invoice/apply-coupon/{customer.pk}/", {"coupon": coupon.pk})
    assert applied.status_code == 302
    again = admin_client.post(f"/admin/invoicing/invoice/apply-coupon/{customer.pk}/", {"coupon": coupon.pk})
    assert again.status_code == 200 and "already applied" in again.content.decode()

    sub = start(customer, version.plan, utc(2026, 1, 1))
    [jan] = invoices_of(sub)
    html = admin_client.get(f"/admin/invoicing/invoice/{jan.pk}/change/").content.decode()
    # 60.00 fee, 60.00 off, tax 0: the discount column and one "why" for the coupon.
    assert "Discount (coupons)" in html and "−$60.00" in html
    assert "LAUNCH100: $100.00 fixed, once; $40.00 left" in html
    pdf_html = invoice_html(jan)
    assert "Discount (coupons)" in pdf_html and "LAUNCH100: $100.00 fixed, once; $40.00 left: -$60.00" in pdf_html
    assert admin_client.get(f"/admin/invoicing/invoice/{jan.pk}/pdf/").content.startswith(b"%PDF")
    page = admin_client.get(f"/admin/customers/customer/{customer.pk}/change/").content.decode()
    assert "LAUNCH100" in page and "$40.00 left" in page

    # Finance removes it (a confirmation first): future invoices only.
    row = AppliedCoupon.objects.get()
    assert admin_client.get("/admin/invoicing/appliedcoupon/").status_code == 200
    assert admin_client.get(f"/admin/invoicing/appliedcoupon/{row.pk}/change/").status_code == 200
    confirm = admin_client.post(
        "/admin/invoicing/appliedcoupon/", {"action": "remove_action", "_selected_action": [row.pk]}
    )
    assert confirm.status_code == 200 and "cannot be undone" in confirm.content.decode()
    admin_client.post(
        "/admin/invoicing/appliedcoupon/", {"action": "remove_action", "_selected_action": [row.pk], "confirm": "yes"}
    )
    row.refresh_from_db()
    assert row.status == "removed" and row.ended_at is not None


def test_one_off_invoice_from_the_customer_page(admin_client):
    from invoicing.models import Addon

    customer = CustomerFactory(external_id="oneoff-adm")
    customer.tax_rates.add(TaxRateFactory(code="vat-20", percentage=D("20")))
    addon = Addon.objects.create(key="onboarding", name="Onboarding package", amount=D("500.00"), currency="USD")
    url = f"/admin/invoicing/invoice/one-off/{customer.pk}/"
    assert admin_client.get(url).status_code == 200
    form = {
        "lines-TOTAL_FORMS": "2",
        "lines-INITIAL_FORMS": "0",
        "lines-0-addon": addon.pk,
        "lines-0-quantity": "1",
        "lines-1-description": "Extra training day",
        "lines-1-amount": "250.00",
        "lines-1-quantity": "2",
        "finalize": "on",
    }
    response = admin_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    invoice = Invoice.objects.get(customer=customer)
    # Onboarding 500.00 + 2 x 250.00 = 1,000.00; VAT 20% = 200.00; total 1,200.00, numbered.
    assert (invoice.kind, invoice.subtotal, invoice.tax, invoice.total) == (
        "one_off",
        D("1000.00"),
        D("200.00"),
        D("1200.00"),
    )
    assert invoice.number and [line.description for line in invoice.lines.all()] == [
        "Onboarding package",
        "Extra training day",
    ]
    # No line at all: refused on the form, nothing written.
    empty = admin_client.post(url, {"lines-TOTAL_FORMS": "1", "lines-INITIAL_FORMS": "0", "finalize": "on"})
    assert empty.status_code == 200 and "at least one line" in empty.content.decode()
    assert Invoice.objects.filter(customer=customer).count() == 1
