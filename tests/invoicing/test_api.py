"""Invoice, payment, credit note, PDF and upcoming-invoice endpoints (shared/API.md)."""

from __future__ import annotations

import subprocess
from decimal import Decimal

import pytest

from invoicing.models import Invoice
from invoicing.services import invoice_finalize
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory, TaxRateFactory
from tests.factories.invoicing import events_create, plan_with_api_calls

from .helpers import invoices_of, start, utc

pytestmark = pytest.mark.django_db


@pytest.fixture
def finalized(db):
    """A finalized $124.00 invoice (Feb 1: $25.00 usage + $99.00 fee), net 30."""
    version, meter = plan_with_api_calls()
    customer = CustomerFactory(external_id="acme", net_payment_terms=30)
    sub = start(customer, version.plan, utc(2026, 1, 1))
    events_create(customer_external_id="acme", event_name=meter.event_name, count=7500, start=utc(2026, 1, 5))
    from invoicing.services import billing_run_execute

    billing_run_execute(now=utc(2026, 2, 1))
    return invoices_of(sub)[1]


@pytest.fixture
def draft(db):
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("10"))
    sub = start(CustomerFactory(external_id="slow", invoice_grace_days=5), version.plan, utc(2026, 1, 1))
    return invoices_of(sub)[0]


def test_get_invoice_shape(api, finalized):
    body = api.get(f"/api/v1/invoices/{finalized.pk}").json()
    assert body["id"] == str(finalized.pk) and body["number"] == "INV-000002"
    assert body["status"] == "finalized" and body["customer"] == "acme"
    assert body["subscription"] == str(finalized.subscription_id)
    assert (body["subtotal"], body["tax"], body["total"], body["amount_due"]) == ("124.00", "0.00", "124.00", "124.00")
    assert body["credits_applied"] == "0.00" and body["amount_paid"] == "0.00"
    assert body["period_start"] == "2026-01-01T00:00:00Z" and body["period_end"] == "2026-02-01T00:00:00Z"
    assert body["issued_at"] == "2026-02-01T00:00:00Z" and body["due_at"] == "2026-03-03T00:00:00Z"
    usage = body["lines"][0]
    assert usage["kind"] == "usage" and usage["price"] == "API calls" and usage["plan_version"] == 1
    assert usage["quantity"] == "7500" and usage["amount"] == "25.00" and usage["tax"] == "0.00"
    assert usage["meter"].startswith("api-calls-")
    assert usage["details"]["breakdown"][1]["amount"].startswith("25")
    assert body["lines"][1]["period_start"] == "2026-02-01T00:00:00Z"


def test_list_filters_and_paginates(api, finalized, draft):
    body = api.get("/api/v1/invoices", {"customer": "acme"}).json()
    assert body["count"] == 2 and {"next", "previous", "results"} <= body.keys()
    assert api.get("/api/v1/invoices", {"status": "draft"}).json()["count"] == 1
    sub = str(finalized.subscription_id)
    assert api.get("/api/v1/invoices", {"subscription": sub}).json()["count"] == 2
    assert api.get("/api/v1/invoices", {"status": "nope"}).status_code == 400
    assert api.get("/api/v1/invoices/999999").status_code == 404
    assert api.get("/api/v1/invoices/abc").status_code == 404


def test_finalized_invoice_refuses_changes(api, finalized):
    for action in ("recalculate", "finalize"):
        response = api.post(f"/api/v1/invoices/{finalized.pk}/{action}")
        assert response.status_code == 409, action
    finalized.refresh_from_db()
    assert finalized.total == Decimal("124.00") and finalized.number == "INV-000002"


def test_partial_payments_then_paid_and_overpayment_refused(api, finalized):
    url = f"/api/v1/invoices/{finalized.pk}/payments"
    over = api.post(url, {"amount": "124.01", "method": "offline"})
    assert over.status_code == 400 and "amount" in over.json()
    first = api.post(url, {"amount": "100.00", "method": "offline", "reference": "wire 1"})
    assert first.status_code == 201
    # $124.00 - $100.00 paid = $24.00 still due.
    assert first.json()["amount_due"] == "24.00" and first.json()["status"] == "finalized"
    second = api.post(url, {"amount": "24.00", "method": "offline", "reference": "wire 2"}).json()
    assert second["amount_due"] == "0.00" and second["amount_paid"] == "124.00" and second["status"] == "paid"
    assert api.post(url, {"amount": "1.00", "method": "offline"}).status_code == 409
    assert api.post(f"/api/v1/invoices/{finalized.pk}/void").status_code == 409
    assert api.post(url, {"amount": "x"}).status_code == 400


def test_void_only_unpaid(api, finalized, draft):
    assert api.post(f"/api/v1/invoices/{draft.pk}/void").status_code == 409
    assert api.post(f"/api/v1/invoices/{draft.pk}/payments", {"amount": "1.00"}).status_code == 409
    response = api.post(f"/api/v1/invoices/{finalized.pk}/void")
    assert response.status_code == 200 and response.json()["status"] == "void"
    assert api.post(f"/api/v1/invoices/{finalized.pk}/void").status_code == 409


def test_draft_recalculate_and_finalize(api, draft):
    response = api.post(f"/api/v1/invoices/{draft.pk}/recalculate")
    assert response.status_code == 200 and response.json()["total"] == "10.00"
    assert response.json()["number"] is None
    response = api.post(f"/api/v1/invoices/{draft.pk}/finalize")
    assert response.status_code == 200 and response.json()["number"] == "INV-000001"
    assert api.post(f"/api/v1/invoices/{draft.pk}/finalize").status_code == 409


def test_credit_notes_numbered_and_capped(api, finalized):
    body = {"invoice": str(finalized.pk), "amount": "24.00", "reason": "Goodwill", "refund_to": "invoice"}
    first = api.post("/api/v1/credit_notes", body)
    assert first.status_code == 201
    note = first.json()
    assert note["number"] == "CN-000001" and note["amount"] == "24.00" and note["currency"] == "USD"
    assert note["invoice"] == str(finalized.pk) and note["refund_to"] == "invoice"
    assert api.get(f"/api/v1/credit_notes/{note['id']}").json() == note
    # $124.00 - $24.00 credited = $100.00 due; at most $100.00 remains creditable.
    assert api.get(f"/api/v1/invoices/{finalized.pk}").json()["amount_due"] == "100.00"
    too_much = api.post("/api/v1/credit_notes", {**body, "amount": "100.01"})
    assert too_much.status_code == 400 and "amount" in too_much.json()
    second = api.post("/api/v1/credit_notes", {**body, "amount": "100.00"}).json()
    assert second["number"] == "CN-000002"
    finalized.refresh_from_db()
    assert finalized.amount_due == 0 and finalized.status == Invoice.Status.PAID
    assert api.post("/api/v1/credit_notes", {**body, "amount": "0.01"}).status_code == 400
    assert api.post("/api/v1/credit_notes", {**body, "invoice": "999999"}).status_code == 400
    assert api.get("/api/v1/credit_notes/999999").status_code == 404


def test_credit_note_on_draft_is_409(api, draft):
    body = {"invoice": str(draft.pk), "amount": "1.00", "reason": "x", "refund_to": "invoice"}
    assert api.post("/api/v1/credit_notes", body).status_code == 409


def test_pdf_has_number_and_amount_due(api, finalized):
    response = api.get(f"/api/v1/invoices/{finalized.pk}/pdf")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    pdf = b"".join(response.streaming_content) if response.streaming else response.content
    assert pdf.startswith(b"%PDF")
    try:
        text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    except FileNotFoundError:
        from invoicing.pdf import invoice_html

        text = invoice_html(finalized)
    assert "INV-000002" in text and "$124.00" in text
    assert "API calls" in text


def test_upcoming_invoice_preview_saves_nothing(api):
    version, meter = plan_with_api_calls()
    customer = CustomerFactory(external_id="soon")
    customer.tax_rates.add(TaxRateFactory(code="vat-20", percentage=Decimal("20")))
    start(customer, version.plan, utc(2026, 1, 1))
    events_create(customer_external_id="soon", event_name=meter.event_name, count=6000, start=utc(2026, 1, 3))
    before = Invoice.objects.count()
    from django.utils import timezone

    # The current period is January 2026 whatever today is (nothing billed it yet).
    body = api.get("/api/v1/customers/soon/upcoming_invoice").json()
    assert Invoice.objects.count() == before
    assert body["status"] == "preview" and body["id"] is None and body["number"] is None
    # (6,000 - 5,000) x $0.01 = $10.00 usage + February fee $99.00 = $109.00; 20% tax $21.80; total $130.80.
    assert (body["subtotal"], body["tax"], body["total"]) == ("109.00", "21.80", "130.80")
    assert [line["kind"] for line in body["lines"]] == ["usage", "fixed"]
    assert api.get("/api/v1/customers/nobody/upcoming_invoice").status_code == 404
    assert timezone.now()  # preview is as of the request time


def test_needs_a_key(anon_api):
    assert anon_api.get("/api/v1/invoices").status_code == 401


def test_schema_documents_invoices(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    text = response.content.decode()
    assert "/api/v1/invoices/{invoice_id}/payments" in text and "upcoming_invoice" in text


def test_finalize_service_refuses_twice(finalized):
    from core.errors import Conflict

    with pytest.raises(Conflict):
        invoice_finalize(invoice=finalized, now=utc(2026, 2, 2))


def test_credit_note_refund_to_wallet_grants_adjustment_credits_for_money_received(api, finalized):
    from wallets.models import CreditGrant
    from wallets.services import wallet_create

    # A refund goes into the customer's wallet and never creates one (docs/billing-rules.md).
    wallet_create(customer=finalized.customer, name="Credits", currency="USD", conversion_rate=Decimal(1))
    body = {"invoice": str(finalized.pk), "amount": "12.50", "reason": "Outage", "refund_to": "wallet"}
    # Nothing was received for the unpaid $124.00 invoice: nothing can be refunded to the wallet.
    unpaid = api.post("/api/v1/credit_notes", body)
    assert unpaid.status_code == 400 and "refund_to" in unpaid.json()
    assert not CreditGrant.objects.exists()
    assert api.post(f"/api/v1/invoices/{finalized.pk}/payments", {"amount": "20.00"}).status_code == 201
    response = api.post("/api/v1/credit_notes", body)
    assert response.status_code == 201, response.json()
    grant = CreditGrant.objects.get(kind="adjustment")
    # The USD wallet at rate 1: $12.50 -> 12.5 credits; the invoice still owes $124.00 - $20.00 = $104.00.
    assert grant.credits == Decimal("12.5") and grant.wallet.customer == finalized.customer
    finalized.refresh_from_db()
    assert finalized.amount_due == Decimal("104.00")
    # $20.00 received - $12.50 refunded = $7.50 left to refund.
    assert api.post("/api/v1/credit_notes", {**body, "amount": "7.51"}).json().keys() >= {"refund_to"}
    assert api.post("/api/v1/credit_notes", {**body, "amount": "7.50"}).status_code == 201


def test_payment_takes_method_reference_and_the_date_received(api, finalized):
    response = api.post(
        f"/api/v1/invoices/{finalized.pk}/payments",
        {"amount": "24.00", "method": "offline", "reference": "Wire WT-2210", "paid_at": "2026-02-03T10:30:00Z"},
    )
    assert response.status_code == 201, response.json()
    assert response.json()["payment"]["paid_at"] == "2026-02-03T10:30:00Z"
    assert response.json()["payment"]["reference"] == "Wire WT-2210"
    future = api.post(
        f"/api/v1/invoices/{finalized.pk}/payments", {"amount": "1.00", "paid_at": "2099-01-01T00:00:00Z"}
    )
    assert future.status_code == 400 and "paid_at" in future.json()
    bad = api.post(f"/api/v1/invoices/{finalized.pk}/payments", {"amount": "1.00", "paid_at": "3000-01-01T00:00:00Z"})
    assert bad.status_code == 400 and "paid_at" in bad.json()


def test_credit_note_to_a_wallet_the_customer_does_not_have_is_refused(api, finalized):
    """Rule (docs/billing-rules.md): a refund never creates a wallet; 400 refund_to until one exists."""
    from wallets.models import Wallet
    from wallets.services import wallet_create

    assert api.post(f"/api/v1/invoices/{finalized.pk}/payments", {"amount": "20.00"}).status_code == 201
    body = {"invoice": str(finalized.pk), "amount": "12.50", "reason": "Outage", "refund_to": "wallet"}
    refused = api.post("/api/v1/credit_notes", body)
    assert refused.status_code == 400 and "no active USD wallet" in refused.json()["refund_to"][0]
    assert not Wallet.objects.exists()
    wallet_create(customer=finalized.customer, name="Credits", currency="USD")
    assert api.post("/api/v1/credit_notes", body).status_code == 201
