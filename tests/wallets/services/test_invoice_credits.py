"""invoicing.services.credits: credits applied to invoices, released for recalculation, alerts and top-ups."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail
from django.db import transaction

from invoicing.models import Invoice, InvoiceLine
from invoicing.services.credits import credits_scheduled_work, invoice_credits_apply, invoice_credits_release
from tests.factories.customers import CustomerFactory
from tests.factories.wallets import WalletFactory
from tests.wallets.conftest import T0, assert_ledger_whole, grant
from wallets.models import LowBalanceAlert
from wallets.services import wallet_consume

pytestmark = pytest.mark.django_db


def _invoice(customer, lines):
    """An invoice with ``lines`` = [(kind, amount, tax)]; totals summed by hand."""
    subtotal = sum((Decimal(a) for _, a, _ in lines), Decimal(0))
    tax = sum((Decimal(t) for _, _, t in lines), Decimal(0))
    invoice = Invoice.objects.create(
        customer=customer, currency="USD", subtotal=subtotal, tax=tax, total=subtotal + tax, amount_due=subtotal + tax,
        reason=Invoice.Reason.ONE_OFF,
    )
    for i, (kind, amount, line_tax) in enumerate(lines):
        InvoiceLine.objects.create(
            invoice=invoice, position=i, kind=kind, description=kind, amount=Decimal(amount), tax=Decimal(line_tax)
        )
    return invoice


def test_rate_005_2000_promotional_credits_pay_100_of_180():
    # 1 credit = $0.05; 2,000 credits are worth 2,000 x 0.05 = $100.00. Invoice $150 + 20% tax = $180.00:
    # credits applied min(180.00, 100.00) = $100.00, due 180.00 - 100.00 = $80.00; the wallet is empty.
    customer = CustomerFactory()
    wallet = WalletFactory(customer=customer, conversion_rate=Decimal("0.05"))
    invoice = _invoice(customer, [("fixed", "150.00", "30.00")])
    with transaction.atomic():
        grant(wallet, 2000, kind="promotional")
        invoice_credits_apply(invoice=invoice, now=T0)
        invoice_credits_apply(invoice=invoice, now=T0)  # idempotent
    invoice.refresh_from_db()
    wallet.refresh_from_db()
    assert (invoice.credits_applied, invoice.amount_due, wallet.balance) == (Decimal("100.00"), Decimal("80.00"), 0)
    assert_ledger_whole(wallet)


def test_usage_only_wallet_pays_usage_lines_with_their_tax_first_then_all_lines_wallet():
    # Lines: fixed $50 + $10 tax, usage $30 + $6 tax; total $96. Usage wallet (rate 1, 1,000 credits) pays
    # usage + its tax = $36 (36 credits); all-lines wallet (rate 0.5, 100 credits = $50) pays
    # min(96 - 36 = 60, 50) = $50 (100 credits). Applied 36 + 50 = $86, due 96 - 86 = $10.
    customer = CustomerFactory()
    all_wallet = WalletFactory(customer=customer, conversion_rate=Decimal("0.5"))
    usage_wallet = WalletFactory(customer=customer, applies_to="usage")
    invoice = _invoice(customer, [("fixed", "50.00", "10.00"), ("usage", "30.00", "6.00")])
    with transaction.atomic():
        grant(all_wallet, 100)
        grant(usage_wallet, 1000)
        invoice_credits_apply(invoice=invoice, now=T0)
    invoice.refresh_from_db()
    usage_wallet.refresh_from_db()
    all_wallet.refresh_from_db()
    assert (invoice.credits_applied, invoice.amount_due) == (Decimal("86.00"), Decimal("10.00"))
    assert (usage_wallet.balance, all_wallet.balance) == (Decimal(964), Decimal(0))  # 1,000 - 36; 100 - 100
    assert_ledger_whole(usage_wallet)
    assert_ledger_whole(all_wallet)


def test_release_gives_back_and_reapply_uses_the_new_total():
    # 100 credits at $1 pay a $40 draft; release gives 40 back (100 held again); the recalculated $55 draft
    # takes 55, leaving 45.
    customer = CustomerFactory()
    wallet = WalletFactory(customer=customer)
    invoice = _invoice(customer, [("usage", "40.00", "0")])
    with transaction.atomic():
        grant(wallet, 100)
        invoice_credits_apply(invoice=invoice, now=T0)
        wallet.refresh_from_db()
        assert wallet.balance == 60
        invoice_credits_release(invoice=invoice, now=T0)
        invoice_credits_release(invoice=invoice, now=T0)  # idempotent
        wallet.refresh_from_db()
        assert wallet.balance == 100
        Invoice.objects.filter(pk=invoice.pk).update(subtotal=55, total=55, amount_due=55)
        invoice.refresh_from_db()
        invoice_credits_apply(invoice=invoice, now=T0)
    invoice.refresh_from_db()
    wallet.refresh_from_db()
    assert (invoice.credits_applied, invoice.amount_due, wallet.balance) == (Decimal(55), Decimal(0), Decimal(45))
    assert_ledger_whole(wallet)


def test_low_balance_alert_once_per_crossing_with_email(django_capture_on_commit_callbacks):
    # Threshold 50: 100 -> 60 (above), -> 40 (crossing: alert), -> 30 (still below: none), +50 = 80 (re-armed),
    # -> 20 (second crossing: second alert).
    customer = CustomerFactory(email="clay@example.com")
    wallet = WalletFactory(customer=customer, low_balance_threshold=Decimal(50))
    with transaction.atomic():
        grant(wallet, 100)
    with django_capture_on_commit_callbacks(execute=True):
        for i, spend in enumerate([40, 20, 10]):
            wallet_consume(wallet=wallet, credits=Decimal(spend), reference="u", idempotency_key=f"s{i}", now=T0)
    assert LowBalanceAlert.objects.filter(wallet=wallet).count() == 1
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["clay@example.com"]
    assert "30" not in mail.outbox[0].body and "40" in mail.outbox[0].body
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            grant(wallet, 50)
        credits_scheduled_work(now=T0)  # 80 >= 50: re-armed
        wallet_consume(wallet=wallet, credits=Decimal(60), reference="u", idempotency_key="s9", now=T0)
    assert LowBalanceAlert.objects.filter(wallet=wallet).count() == 2
    assert len(mail.outbox) == 2
    assert LowBalanceAlert.objects.filter(emailed_at__isnull=True).count() == 0
    assert_ledger_whole(wallet)


def test_auto_top_up_buys_a_paid_grant_and_a_purchase_invoice(django_capture_on_commit_callbacks):
    # 1 credit = $0.05, threshold 100, auto top-up 1,000. A $9 invoice takes 9 / 0.05 = 180 of 200 credits -> 20
    # left < 100: alert, paid grant of 1,000 (balance 1,020) and an invoice of 1,000 x 0.05 = $50.00.
    customer = CustomerFactory()
    wallet = WalletFactory(
        customer=customer, conversion_rate=Decimal("0.05"), low_balance_threshold=Decimal(100),
        auto_top_up_credits=Decimal(1000),
    )
    invoice = _invoice(customer, [("usage", "9.00", "0")])
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            grant(wallet, 200)
            invoice_credits_apply(invoice=invoice, now=T0)
    wallet.refresh_from_db()
    assert wallet.balance == Decimal(1020)
    assert not wallet.below_threshold  # the top-up lifted it back above: re-armed
    alert = LowBalanceAlert.objects.get(wallet=wallet)
    assert (alert.balance, alert.top_up_grant.kind, alert.top_up_grant.credits) == (20, "paid", 1000)
    purchase = Invoice.objects.get(kind="credit_purchase")
    assert purchase.reason == Invoice.Reason.CREDIT_PURCHASE
    line = purchase.lines.get()
    assert (purchase.total, line.kind, line.amount, line.quantity) == (Decimal("50.00"), "credit_purchase", Decimal("50.00"), 1000)
    assert purchase.status == "finalized" or purchase.finalize_after == T0
    assert_ledger_whole(wallet)


def test_scheduled_work_expires_grants_past_their_expiry():
    from datetime import timedelta

    wallet = WalletFactory()
    with transaction.atomic():
        grant(wallet, 30, expires_at=T0 + timedelta(days=3))
    assert credits_scheduled_work(now=T0 + timedelta(days=2))["grants_expired"] == 0
    assert credits_scheduled_work(now=T0 + timedelta(days=3))["grants_expired"] == 1
    assert credits_scheduled_work(now=T0 + timedelta(days=3))["grants_expired"] == 0
    wallet.refresh_from_db()
    assert wallet.balance == 0
    assert_ledger_whole(wallet)
