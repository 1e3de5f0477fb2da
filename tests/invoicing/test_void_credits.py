"""Voiding an invoice gives back the wallet credits applied to it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.errors import Conflict
from invoicing.models import Invoice
from invoicing.services import invoice_void, subscription_start
from tests.factories.catalog import PlanFactory, PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from wallets.models import LedgerEntry
from wallets.selectors import wallet_ledger_check
from wallets.services import wallet_create, wallet_grant_create

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
    assert (invoice.total, invoice.credits_applied, invoice.amount_due) == (Decimal("30.00"), Decimal("30.00"), Decimal(0))
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
