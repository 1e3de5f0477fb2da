"""The invoice document as a customer reads it: who sells, whom it bills (with the address as at finalization), the
status in words, one row per tax, no "-$0.00" rows, a DRAFT watermark until it is issued, payments and notes."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from customers.services import customer_update
from invoicing.models import Invoice
from invoicing.pdf import invoice_html, invoice_pdf
from invoicing.services import credit_note_issue, invoice_finalize, payment_record
from tests.factories.customers import CustomerFactory
from tests.factories.invoicing import InvoiceFactory, InvoiceLineFactory
from wallets.services import wallet_create

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 14, 5, tzinfo=UTC)
ADDRESS = {
    "address_line1": "1 Main Street",
    "address_line2": "Floor 2",
    "address_city": "London",
    "address_postal_code": "EC1A 1AA",
    "address_country": "GB",
}


def _text(html: str) -> str:
    """The document's words, tags removed and spaces squeezed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def _invoice(customer, *, amount="100.00", tax="20.00", with_tax_rate=True) -> Invoice:
    invoice = InvoiceLineFactory(
        invoice=InvoiceFactory(customer=customer), amount=Decimal(amount), tax=Decimal(tax)
    ).invoice
    invoice.subtotal = Decimal(amount)
    invoice.tax = Decimal(tax)
    invoice.total = invoice.amount_due = Decimal(amount) + Decimal(tax)
    if with_tax_rate:
        invoice.tax_breakdown = [{"code": "vat-20", "percentage": "20", "taxable": amount, "amount": tax}]
    invoice.save()
    invoice.refresh_from_db()
    return invoice


@pytest.fixture
def seller(settings):
    settings.SELLER_NAME = "Ledgerline Ltd"
    settings.SELLER_ADDRESS = "10 Billing Road; Manchester M1 1AA; GB"
    settings.SELLER_TAX_ID = "GB123456789"


def test_the_document_names_the_seller_and_the_bill_to_address_as_at_finalization(seller):
    customer = CustomerFactory(external_id="acme", name="Acme Ltd", email="billing@acme.test", **ADDRESS)
    invoice = _invoice(customer)
    invoice_finalize(invoice=invoice, now=NOW)
    customer_update(customer=customer, data={"address_line1": "99 Elsewhere", "address_city": "Paris"})
    invoice.refresh_from_db()

    assert (invoice.bill_to_address_line1, invoice.bill_to_city, invoice.bill_to_country) == (
        "1 Main Street",
        "London",
        "GB",
    )
    text = _text(invoice_html(invoice))
    assert "From Ledgerline Ltd 10 Billing Road Manchester M1 1AA GB Tax id: GB123456789" in text
    assert "Bill to Acme Ltd 1 Main Street Floor 2 EC1A 1AA London GB billing@acme.test Customer id: acme" in text
    assert "Elsewhere" not in text and "Paris" not in text
    # The status in words, the dates in the project's format, UTC said once.
    assert "Status Finalized" in text and "Issued 1 Mar 2026, 14:05" in text
    assert text.count("UTC") == 1 and "All dates and times are UTC." in text
    assert invoice_pdf(invoice).startswith(b"%PDF")


def test_a_draft_is_watermarked_and_shows_the_customer_as_it_is_now(seller):
    customer = CustomerFactory(external_id="acme", name="Acme Ltd", **ADDRESS)
    draft = _invoice(customer)
    html = invoice_html(draft)
    assert 'id="watermark">DRAFT<' in html and "Status Draft" in _text(html)
    invoice_finalize(invoice=draft, now=NOW)
    draft.refresh_from_db()
    assert "watermark" not in invoice_html(draft).split("</style>")[1]
    assert invoice_pdf(draft).startswith(b"%PDF")


def test_one_row_per_tax_and_no_minus_zero_rows(seller):
    """Regression: "Tax vat-20 (20%) on $100.00 $20.00" then "Tax $20.00" again; "-$0.00" for credits, notes and
    payments that did not happen."""
    invoice = _invoice(CustomerFactory())
    invoice_finalize(invoice=invoice, now=NOW)
    invoice.refresh_from_db()
    html = invoice_html(invoice)
    totals = _text(html.split('id="totals">')[1].split("</table>")[0])
    # $100.00 + 20% = $120.00, nothing paid: one tax row, no deductions.
    assert totals == "Subtotal $100.00 Tax vat-20 (20%) on $100.00 $20.00 Total $120.00 Amount due $120.00"
    assert "-$0.00" not in html and "$-0" not in html

    # Without a tax rate, the tax row says the total tax once.
    untaxed = _invoice(CustomerFactory(), tax="0", with_tax_rate=False)
    totals = _text(invoice_html(untaxed).split('id="totals">')[1].split("</table>")[0])
    assert totals == "Subtotal $100.00 Tax $0.00 Total $100.00 Amount due $100.00"


def test_payments_and_credit_notes_are_listed_and_deducted(seller):
    customer = CustomerFactory(external_id="acme")
    wallet_create(customer=customer, name="Credits", currency="USD")
    invoice = _invoice(customer)
    invoice_finalize(invoice=invoice, now=NOW)
    invoice.refresh_from_db()
    later = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    payment_record(invoice=invoice, amount=Decimal("50.00"), reference="Wire WT-2210", now=later, paid_at=later)
    credit_note_issue(invoice=invoice, amount=Decimal("10.00"), reason="Outage", refund_to="invoice", now=later)
    credit_note_issue(invoice=invoice, amount=Decimal("5.00"), reason="Goodwill", refund_to="wallet", now=later)
    invoice.refresh_from_db()
    html = invoice_html(invoice)
    totals = _text(html.split('id="totals">')[1].split("</table>")[0])
    # $120.00 - $10.00 credited to the invoice - $50.00 paid = $60.00 due; the $5.00 wallet refund leaves it.
    assert totals == (
        "Subtotal $100.00 Tax vat-20 (20%) on $100.00 $20.00 Total $120.00 Credit notes -$10.00 "
        "Paid -$50.00 Amount due $60.00"
    )
    payments = _text(html.split('id="payments">')[1].split("</table>")[0])
    assert "2 Mar 2026, 09:00" in payments and "Wire WT-2210" in payments and "$50.00" in payments
    notes = _text(html.split('id="credit-notes">')[1].split("</table>")[0])
    assert "CN-000001" in notes and "Reduce what the invoice owes" in notes and "$10.00" in notes
    assert "CN-000002" in notes and "Refund to the customer&#x27;s wallet" in notes and "$5.00" in notes
