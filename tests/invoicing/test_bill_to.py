"""An issued invoice keeps the customer it was addressed to: renaming the customer later changes no document."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from customers.services import customer_update
from invoicing.models import Invoice
from invoicing.pdf import invoice_html
from invoicing.services import invoice_finalize
from tests.factories.customers import CustomerFactory
from tests.factories.invoicing import InvoiceFactory, InvoiceLineFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _invoice(customer) -> Invoice:
    invoice = InvoiceLineFactory(invoice=InvoiceFactory(customer=customer), amount=Decimal("40.00")).invoice
    invoice.subtotal = invoice.total = invoice.amount_due = Decimal("40.00")
    invoice.save()
    return invoice


def _pdf_text(client, invoice) -> str:
    pdf = client.get(f"/admin/invoicing/invoice/{invoice.pk}/pdf/").content
    assert pdf.startswith(b"%PDF")
    try:
        return subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    except FileNotFoundError:
        return invoice_html(Invoice.objects.get(pk=invoice.pk))  # what the PDF was rendered from


def test_a_finalized_invoice_keeps_the_bill_to_it_was_issued_with(admin_client):
    """Regression: the PDF of a finalized invoice read the customer's name and email live."""
    customer = CustomerFactory(external_id="acme", name="Acme Ltd", email="billing@acme.test")
    issued = _invoice(customer)
    invoice_finalize(invoice=issued, now=NOW)
    draft = _invoice(customer)
    customer_update(customer=customer, data={"name": "Renamed Corp", "email": "new@renamed.test"})

    issued.refresh_from_db()
    assert (issued.bill_to_name, issued.bill_to_email, issued.bill_to_external_id) == (
        "Acme Ltd",
        "billing@acme.test",
        "acme",
    )
    text = _pdf_text(admin_client, issued)
    assert "Acme Ltd" in text and "billing@acme.test" in text and "Renamed" not in text
    page = admin_client.get(f"/admin/invoicing/invoice/{issued.pk}/change/").content.decode()
    assert "Acme Ltd (acme)" in page and "billing@acme.test" in page and "Renamed Corp" not in page
    listing = admin_client.get("/admin/invoicing/invoice/", {"status__exact": "paid"}).content.decode()
    listing += admin_client.get("/admin/invoicing/invoice/", {"status__exact": "finalized"}).content.decode()
    assert "Acme Ltd (acme)" in listing and "Renamed Corp" not in listing

    # a draft is not issued yet: it shows the customer as it is now, and takes the copy when finalized
    assert "Renamed Corp" in _pdf_text(admin_client, draft)
    assert draft.bill_to_name == ""
    invoice_finalize(invoice=draft, now=NOW)
    draft.refresh_from_db()
    assert (draft.bill_to_name, draft.bill_to_email) == ("Renamed Corp", "new@renamed.test")


def test_the_backfill_copies_the_customer_onto_invoices_issued_before_the_snapshot():
    from importlib import import_module

    from django.apps import apps as global_apps

    backfill = import_module("invoicing.migrations.0003_backfill_invoice_bill_to").backfill
    customer = CustomerFactory(external_id="acme", name="Acme Ltd", email="billing@acme.test")
    old = _invoice(customer)
    Invoice.objects.filter(pk=old.pk).update(status="finalized", number="INV-000001")
    draft = _invoice(customer)
    backfill(global_apps, None)
    old.refresh_from_db()
    draft.refresh_from_db()
    assert (old.bill_to_name, old.bill_to_email, old.bill_to_external_id) == ("Acme Ltd", "billing@acme.test", "acme")
    assert (draft.bill_to_name, draft.bill_to_external_id) == ("", "")
