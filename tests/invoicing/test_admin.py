"""Admin smoke tests: list with totals, invoice page, actions with confirmation, PDF, upcoming preview."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User

from invoicing.models import CreditNote, Invoice, Payment
from invoicing.services import billing_run_execute
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.factories.invoicing import events_create, plan_with_api_calls

from .helpers import invoices_of, start, utc

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/invoicing/invoice/"


@pytest.fixture
def admin_client(client):
    user = User.objects.create_superuser("finance", "finance@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def feb_invoice():
    version, meter = plan_with_api_calls()
    customer = CustomerFactory(external_id="acme")
    sub = start(customer, version.plan, utc(2026, 1, 1))
    events_create(customer_external_id="acme", event_name=meter.event_name, count=7500, start=utc(2026, 1, 5))
    billing_run_execute(now=utc(2026, 2, 1))
    return invoices_of(sub)[1]


def _action(client, action, invoice, **extra):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [invoice.pk], **extra})


def test_changelist_shows_totals_and_filters(admin_client, feb_invoice):
    response = admin_client.get(CHANGELIST, {"status__exact": "finalized"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "INV-000002" in html and "invoice-totals" in html
    # Both invoices are finalized: $99.00 + $124.00 = $223.00 in total.
    assert "$223.00" in html
    assert admin_client.get(CHANGELIST, {"q": "acme"}).status_code == 200


def test_invoice_page_explains_lines_and_is_read_only(admin_client, feb_invoice):
    url = f"{CHANGELIST}{feb_invoice.pk}/change/"
    html = admin_client.get(url).content.decode()
    assert "API calls — 7,500 units, 5,000 included, Jan 1–31 2026" in html
    assert "<table" in html and "Tier" in html and "Download PDF" in html
    assert "&quot;breakdown&quot;" not in html  # no raw JSON
    response = admin_client.post(url, {"number": "HACKED"})
    assert response.status_code == 403
    feb_invoice.refresh_from_db()
    assert feb_invoice.number == "INV-000002"


def test_actions_confirm_then_act_and_log(admin_client, feb_invoice):
    confirm = _action(admin_client, "void_action", feb_invoice)
    assert confirm.status_code == 200 and b"cannot be undone" in confirm.content
    feb_invoice.refresh_from_db()
    assert feb_invoice.status == Invoice.Status.FINALIZED
    # Recalculating a finalized invoice is refused with a message; nothing changes.
    _action(admin_client, "recalculate_action", feb_invoice, confirm="yes")
    feb_invoice.refresh_from_db()
    assert feb_invoice.total == Decimal("124.00") and feb_invoice.status == Invoice.Status.FINALIZED
    # A payment through the form: $124.00 - $24.00 = $100.00 due.
    assert _action(admin_client, "record_payment_action", feb_invoice).status_code == 200
    _action(admin_client, "record_payment_action", feb_invoice, confirm="yes", amount="24.00", reference="wire")
    feb_invoice.refresh_from_db()
    assert feb_invoice.amount_due == Decimal("100.00") and Payment.objects.count() == 1
    _action(
        admin_client,
        "credit_note_action",
        feb_invoice,
        confirm="yes",
        amount="10.00",
        reason="Goodwill",
        refund_to="invoice",
    )
    assert CreditNote.objects.get().number == "CN-000001"
    assert LogEntry.objects.filter(object_id=str(feb_invoice.pk)).count() == 2
    # Void refused: something was paid.
    _action(admin_client, "void_action", feb_invoice, confirm="yes")
    feb_invoice.refresh_from_db()
    assert feb_invoice.status == Invoice.Status.FINALIZED


def test_finalize_draft_from_admin(admin_client):
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("10"))
    sub = start(CustomerFactory(invoice_grace_days=2), version.plan, utc(2026, 1, 1))
    draft = invoices_of(sub)[0]
    _action(admin_client, "finalize_action", draft, confirm="yes")
    draft.refresh_from_db()
    assert draft.number == "INV-000001"
    assert LogEntry.objects.filter(object_id=str(draft.pk)).exists()


def test_pdf_and_upcoming_views(admin_client, feb_invoice):
    pdf = admin_client.get(f"{CHANGELIST}{feb_invoice.pk}/pdf/")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    upcoming = admin_client.get(f"{CHANGELIST}upcoming/{feb_invoice.customer_id}/")
    assert upcoming.status_code == 200 and b"Nothing is saved" in upcoming.content
    assert admin_client.get("/admin/invoicing/payment/").status_code == 200
    assert admin_client.get("/admin/invoicing/creditnote/").status_code == 200


def test_tier_table_is_the_same_in_the_admin_and_the_pdf():
    """One formatter serves both: 7,500 units = 5,000 free + 2,500 x $0.01 = $25.00."""
    from invoicing.admin import line_explanation
    from invoicing.pdf import breakdown_rows, invoice_pdf_filename

    details = {
        "explanation": "graduated",
        "breakdown": [
            {
                "tier": 1,
                "first_unit": "1",
                "up_to": "5000",
                "units": "5000",
                "unit_amount": "0",
                "flat_amount": "0",
                "amount": "0",
            },
            {
                "tier": 2,
                "first_unit": "5001",
                "up_to": None,
                "units": "2500",
                "unit_amount": "0.01",
                "flat_amount": "0",
                "amount": "25",
            },
        ],
    }
    rows = breakdown_rows(details, "USD")
    assert [r["range"] for r in rows] == ["1 – 5,000", "5,001 – ∞"]
    assert rows[1] == {
        "tier": 2,
        "range": "5,001 – ∞",
        "units": "2,500",
        "unit_amount": "$0.01",
        "flat_amount": "$0.00",
        "amount": "$25.00",
    }
    html = line_explanation(details, "USD")
    assert "<td>2</td><td class='num'>5,001 – ∞</td><td class='num'>2,500</td><td class='num'>$0.01</td>" in html
    assert "<td class='num'>$25.00</td></tr></table>" in html
    assert "<th>Flat</th>" not in html  # no tier has a flat amount: no column of $0.00
    details["breakdown"][1]["flat_amount"] = "50"  # 2,500 x $0.01 + $50 flat = $75.00
    details["breakdown"][1]["amount"] = "75"
    html = line_explanation(details, "USD")
    assert "<th>Flat</th>" in html
    assert "<td class='num'>$0.01</td><td class='num'>$50.00</td><td class='num'>$75.00</td></tr></table>" in html
    assert breakdown_rows({}, "USD") == [] and line_explanation({}, "USD") == "—"
    assert invoice_pdf_filename(Invoice(pk=7)) == "draft-7.pdf"
    assert invoice_pdf_filename(Invoice(pk=7, number="INV-000042")) == "INV-000042.pdf"


def _messages(response) -> list[str]:
    return [str(m) for m in response.wsgi_request._messages]


def test_a_partial_payment_says_how_much_was_recorded_and_what_is_still_due(admin_client, feb_invoice):
    """Regression: a partial payment said "1 invoice(s) paid"."""
    response = _action(
        admin_client,
        "record_payment_action",
        feb_invoice,
        confirm="yes",
        amount="24.00",
        paid_at="2026-02-03 10:30",
        method="offline",
        reference="Wire WT-2210",
    )
    # $124.00 - $24.00 = $100.00 still due
    assert _messages(response) == ["Payment of $24.00 recorded on INV-000002; $100.00 still due."]
    payment = Payment.objects.get()
    assert (payment.paid_at, payment.method, payment.reference) == (utc(2026, 2, 3, 10, 30), "offline", "Wire WT-2210")
    # The rest, received "now" (the date left empty): paid in full, as of that payment.
    response = _action(
        admin_client,
        "record_payment_action",
        feb_invoice,
        confirm="yes",
        amount="100.00",
        method="offline",
        reference="",
    )
    assert _messages(response)[-1] == "Payment of $100.00 recorded on INV-000002; INV-000002 is paid in full."
    feb_invoice.refresh_from_db()
    latest = Payment.objects.order_by("-paid_at").first()
    assert feb_invoice.status == Invoice.Status.PAID and feb_invoice.paid_at == latest.paid_at


def test_a_payment_received_in_the_future_is_refused_on_the_form(admin_client, feb_invoice):
    page = _action(
        admin_client,
        "record_payment_action",
        feb_invoice,
        confirm="yes",
        amount="24.00",
        paid_at="2099-01-01 00:00",
        method="offline",
    )
    assert page.status_code == 200
    assert page.context["form"].errors["paid_at"] == [
        "Must not be in the future: record a payment once it is received."
    ]
    assert not Payment.objects.exists()


def test_an_action_started_on_the_invoice_page_lands_back_on_it(admin_client, feb_invoice):
    page = f"{CHANGELIST}{feb_invoice.pk}/change/"
    html = admin_client.get(page).content.decode()
    assert 'name="_return_to_object" value="1"' in html
    confirm = _action(admin_client, "record_payment_action", feb_invoice, _return_to_object="1")
    assert 'name="_return_to_object"' in confirm.content.decode() and f'href="{page}"' in confirm.content.decode()
    done = _action(
        admin_client,
        "record_payment_action",
        feb_invoice,
        _return_to_object="1",
        confirm="yes",
        amount="24.00",
        method="offline",
    )
    assert done.status_code == 302 and done["Location"] == page
    # From the list, back to the list (Django's own behaviour).
    listed = _action(admin_client, "record_payment_action", feb_invoice, confirm="yes", amount="1.00", method="offline")
    assert listed.status_code == 302 and listed["Location"] == CHANGELIST


def test_the_invoice_page_lists_its_payments_and_both_kinds_of_credit_note(admin_client, feb_invoice):
    """Regression: the page listed neither payments nor credit notes, and "Credit notes" omitted wallet refunds."""
    from wallets.services import wallet_create

    wallet_create(customer=feb_invoice.customer, name="Credits", currency="USD")
    _action(
        admin_client,
        "record_payment_action",
        feb_invoice,
        confirm="yes",
        amount="24.00",
        paid_at="2026-02-03 10:30",
        method="offline",
        reference="Wire WT-2210",
    )
    _action(
        admin_client,
        "credit_note_action",
        feb_invoice,
        confirm="yes",
        amount="10.00",
        reason="Goodwill",
        refund_to="invoice",
    )
    response = _action(
        admin_client,
        "credit_note_action",
        feb_invoice,
        confirm="yes",
        amount="4.00",
        reason="Outage",
        refund_to="wallet",
    )
    assert _messages(response)[-1] == (
        "Credit note CN-000002 of $4.00 issued on INV-000002: refunded to the customer's USD wallet as credits; "
        "what the invoice owes is unchanged."
    )
    html = admin_client.get(f"{CHANGELIST}{feb_invoice.pk}/change/").content.decode()
    assert "3 Feb 2026, 10:30" in html and "Wire WT-2210" in html
    assert "CN-000001" in html and "Goodwill" in html and "CN-000002" in html and "Outage" in html
    # $10.00 reduced what it owes ($124.00 - $24.00 - $10.00 = $90.00 due); $4.00 went to the wallet.
    assert "$10.00 credited to the invoice<br>$4.00 refunded to the customer's wallet" in html
    feb_invoice.refresh_from_db()
    assert feb_invoice.amount_due == Decimal("90.00")


def test_a_wallet_refund_for_a_customer_without_a_wallet_is_refused_and_creates_none(admin_client, feb_invoice):
    """Regression: the refund silently created a wallet (rate 1) for the customer."""
    from wallets.models import Wallet

    _action(admin_client, "record_payment_action", feb_invoice, confirm="yes", amount="24.00", method="offline")
    response = _action(
        admin_client,
        "credit_note_action",
        feb_invoice,
        confirm="yes",
        amount="4.00",
        reason="Outage",
        refund_to="wallet",
    )
    # The form again, the rule beside "refund to"; no success message, no note, no wallet.
    assert response.status_code == 200 and "has no active USD wallet" in response.content.decode()
    assert response.context["form"].errors["refund_to"][0].startswith(f"{feb_invoice.customer.name} has no active")
    assert not any("issued" in m for m in _messages(response))
    assert not Wallet.objects.exists() and not CreditNote.objects.exists()
