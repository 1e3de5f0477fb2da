"""Voiding an invoice gives back the wallet credits applied to it -- once: credit notes and voids never give
value twice (H1, M7)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.errors import Conflict
from invoicing.models import Invoice
from invoicing.services import invoice_void, subscription_start
from invoicing.services.credits import credits_scheduled_work
from invoicing.services.invoices import credit_purchase_invoice_create
from tests.factories.catalog import PlanFactory, PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from wallets.models import LedgerEntry
from wallets.selectors import wallet_ledger_check
from wallets.services import wallet_consume, wallet_create, wallet_grant_create

pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_void_returns_applied_credits_to_their_lot():
    plan = PlanFactory(key="team")
    PriceFactory(plan_version=PlanVersionFactory(plan=plan, number=1, published=True), amount=Decimal("30.00"))
    customer = CustomerFactory(external_id="acme")
    wallet = wallet_create(customer=customer, name="Prepaid", currency="USD", conversion_rate=Decimal("1"))
    wallet_grant_create(wallet=wallet, credits=Decimal("100"), kind="promotional", effective_at=START, now=START)

    subscription_start(customer=customer, plan=plan, start_at=START, billing="calendar", pinned_version=None, now=START)
    invoice = Invoice.objects.get(customer=customer)
    # $30.00 in advance, paid by 30 credits at $1 each: nothing due, 70 credits left
    assert (invoice.total, invoice.credits_applied, invoice.amount_due) == (
        Decimal("30.00"),
        Decimal("30.00"),
        Decimal(0),
    )
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(70)

    invoice_void(invoice=invoice, now=datetime(2026, 1, 5, tzinfo=UTC))
    invoice.refresh_from_db()
    wallet.refresh_from_db()
    # the 30 credits come back: 70 + 30 = 100, booked as one adjustment row on the original lot
    assert invoice.status == Invoice.Status.VOID and invoice.credits_applied == 0 and invoice.amount_due == 0
    assert wallet.balance == Decimal(100)
    back = LedgerEntry.objects.get(wallet=wallet, type=LedgerEntry.Type.ADJUSTMENT)
    assert back.credits == Decimal(30) and back.invoice_id == invoice.pk and "voided" in back.description
    assert wallet_ledger_check(wallet=wallet).ok

    # voiding again is refused and gives nothing more back
    with pytest.raises(Conflict):
        invoice_void(invoice=invoice, now=datetime(2026, 1, 6, tzinfo=UTC))
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(100)


# --- Money safety: credit notes and voids never give value twice (docs/billing-rules.md) -------------------


def _finalized(fee: str, *, credits: str | None = None, external_id: str = "h1"):
    """A customer (wallet at rate 1 holding ``credits``, if any) whose start invoice bills ``fee`` at once."""
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal(fee))
    customer = CustomerFactory(external_id=external_id)
    wallet = None
    if credits is not None:
        wallet = wallet_create(customer=customer, currency="USD")
        wallet_grant_create(wallet=wallet, credits=Decimal(credits), kind="promotional", effective_at=START, now=START)
    subscription_start(
        customer=customer, plan=version.plan, start_at=START, billing="calendar", pinned_version=None, now=START
    )
    return Invoice.objects.get(customer=customer), wallet


def _note(api, invoice, amount: str, refund_to: str):
    return api.post(
        "/api/v1/credit_notes", {"invoice": str(invoice.pk), "amount": amount, "reason": "x", "refund_to": refund_to}
    )


def test_h1_no_wallet_refund_for_an_unpaid_invoice_and_no_void_after_a_credit_note(api):
    # The finding: a $120.00 invoice, finalized and unpaid, refunded to the wallet (120 credits) while it still
    # asked for $120.00, then voided: 120 credits for nothing. Now nothing was received, so nothing is refunded.
    invoice, _ = _finalized("120.00")
    response = _note(api, invoice, "120.00", "wallet")
    assert response.status_code == 400 and "refund_to" in response.json()
    assert not invoice.customer.wallets.exists()
    # Reducing what it owes is fine; voiding afterwards is refused (the note already gave part of it back).
    assert _note(api, invoice, "20.00", "invoice").status_code == 201
    assert api.post(f"/api/v1/invoices/{invoice.pk}/void").status_code == 409
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_due) == ("finalized", Decimal("100.00"))


def test_h1_credits_applied_are_refunded_once(api):
    # $240.00 invoice, 120 credits (rate 1) pay $120.00 of it, $120.00 due. Received: $120.00 in credits, so a
    # wallet refund of at most $120.00; after it, voiding would hand the 120 applied credits back a second
    # time: refused. The customer ends with 120 credits and still owes $120.00 (worth 120 - 120 owed = 0,
    # as before the invoice minus the half of it that was not credited).
    invoice, wallet = _finalized("240.00", credits="120")
    assert (invoice.credits_applied, invoice.amount_due) == (Decimal("120.00"), Decimal("120.00"))
    assert _note(api, invoice, "120.01", "wallet").json().keys() >= {"refund_to"}
    assert _note(api, invoice, "120.00", "wallet").status_code == 201
    assert _note(api, invoice, "0.01", "wallet").status_code == 400  # all received was refunded
    assert api.post(f"/api/v1/invoices/{invoice.pk}/void").status_code == 409
    wallet.refresh_from_db()
    invoice.refresh_from_db()
    assert (wallet.balance, invoice.status, invoice.amount_due) == (Decimal(120), "finalized", Decimal("120.00"))
    assert wallet_ledger_check(wallet=wallet).ok


def test_m7_refund_to_invoice_of_a_paid_invoice_is_refused_and_uses_nothing_up(api):
    # A $50.00 invoice paid in full: it owes nothing, so a note reducing what it owes is a 400 naming refund_to
    # (it used to answer 201, do nothing and use up the creditable amount). The full $50.00 can still go to
    # the wallet: it was received.
    invoice, _ = _finalized("50.00")
    assert api.post(f"/api/v1/invoices/{invoice.pk}/payments", {"amount": "50.00"}).status_code == 201
    response = _note(api, invoice, "10.00", "invoice")
    assert response.status_code == 400 and "refund_to" in response.json()
    assert not invoice.credit_notes.exists()
    assert _note(api, invoice, "50.00", "wallet").status_code == 201


def test_refund_to_invoice_beyond_what_it_still_owes_is_400_refund_to(api):
    # $80.00 invoice, $30.00 paid: it still owes $50.00. $50.01 to the invoice is a 400 refund_to; the
    # creditable amount ($80.00) is not the limit for this kind of note.
    invoice, _ = _finalized("80.00")
    api.post(f"/api/v1/invoices/{invoice.pk}/payments", {"amount": "30.00"})
    assert _note(api, invoice, "50.01", "invoice").json().keys() >= {"refund_to"}
    assert _note(api, invoice, "80.01", "invoice").json().keys() >= {"amount"}  # beyond creditable: amount
    assert _note(api, invoice, "50.00", "invoice").status_code == 201
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_due) == ("paid", 0)


def _topped_up(external_id: str = "topup"):
    """Wallet of 5 credits (rate 1), threshold 100, auto top-up 500: the run buys 500 (balance 505) and a $500.00
    purchase invoice, finalized and unpaid."""
    customer = CustomerFactory(external_id=external_id)
    wallet = wallet_create(
        customer=customer, currency="USD", low_balance_threshold=Decimal(100), auto_top_up_credits=Decimal(500)
    )
    wallet_grant_create(wallet=wallet, credits=Decimal(5), kind="promotional", effective_at=START, now=START)
    credits_scheduled_work(now=START, top_up=credit_purchase_invoice_create)
    wallet.refresh_from_db()
    purchase = Invoice.objects.get(customer=customer, kind=Invoice.Kind.CREDIT_PURCHASE)
    assert (wallet.balance, purchase.status, purchase.amount_due) == (Decimal(505), "finalized", Decimal("500.00"))
    return wallet, purchase


def test_h1_auto_top_up_purchase_is_not_refunded_to_the_wallet_and_a_note_takes_credits_back(api):
    # The finding: a wallet refund of the unpaid $500.00 purchase made 505 -> 1,005 credits. Now refused; a note
    # reducing what the purchase owes ($100.00) takes its 100 credits back: 405 credits, $400.00 due.
    wallet, purchase = _topped_up()
    assert _note(api, purchase, "500.00", "wallet").json().keys() >= {"refund_to"}
    assert _note(api, purchase, "100.00", "invoice").status_code == 201
    wallet.refresh_from_db()
    purchase.refresh_from_db()
    assert (wallet.balance, purchase.amount_due) == (Decimal(405), Decimal("400.00"))
    assert wallet.ledger.order_by("-id").first().type == "void"
    assert wallet_ledger_check(wallet=wallet).ok


def test_voiding_a_credit_purchase_takes_its_unspent_credits_back():
    # 505 credits after the top-up; voiding the unpaid $500.00 purchase voids the 500 bought: 5 left.
    wallet, purchase = _topped_up()
    invoice_void(invoice=purchase, now=datetime(2026, 1, 2, tzinfo=UTC))
    wallet.refresh_from_db()
    purchase.refresh_from_db()
    assert (purchase.status, wallet.balance) == ("void", Decimal(5))
    assert wallet.grants.get(kind="paid").status == "voided"
    assert wallet_ledger_check(wallet=wallet).ok


def test_voiding_a_credit_purchase_whose_credits_were_spent_is_409():
    # 6 credits spent: the 5 promotional ones first (older), then 1 of the 500 bought. The purchase can no
    # longer be voided (nothing changes); a payment or a note settles it instead.
    wallet, purchase = _topped_up()
    wallet_consume(wallet=wallet, credits=Decimal(6), reference="usage", idempotency_key="u1", now=START)
    with pytest.raises(Conflict):
        invoice_void(invoice=purchase, now=datetime(2026, 1, 2, tzinfo=UTC))
    wallet.refresh_from_db()
    purchase.refresh_from_db()
    assert (purchase.status, wallet.balance) == ("finalized", Decimal(499))
