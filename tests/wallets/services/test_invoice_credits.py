"""invoicing.services.credits: credits applied to invoices, released for recalculation, alerts and top-ups.

The seam receives what an auto top-up buys besides its credits (``top_up``: the purchase invoice); these tests
pass it as invoicing's own callers do."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail
from django.db import transaction

from core.errors import Conflict
from invoicing.models import Invoice, InvoiceLine
from invoicing.services import credits as credits_seam
from invoicing.services.credits import invoice_credits_release
from invoicing.services.invoices import credit_purchase_invoice_create
from tests.factories.customers import CustomerFactory
from tests.factories.wallets import WalletFactory
from tests.wallets.conftest import T0, assert_ledger_whole, grant
from wallets.models import CreditHold, LowBalanceAlert
from wallets.services import wallet_consume, wallet_grant_void_locked, wallet_spendable

pytestmark = pytest.mark.django_db


def invoice_credits_apply(*, invoice, now):
    credits_seam.invoice_credits_apply(invoice=invoice, now=now, top_up=credit_purchase_invoice_create)


def credits_scheduled_work(*, now):
    return credits_seam.credits_scheduled_work(now=now, top_up=credit_purchase_invoice_create)


def _invoice(customer, lines, status=Invoice.Status.FINALIZED):
    """An invoice with ``lines`` = [(kind, amount, tax)]; totals summed by hand. ``finalized`` (the status an
    invoice being finalized has when its credits are applied) unless a draft is asked for (credits held)."""
    subtotal = sum((Decimal(a) for _, a, _ in lines), Decimal(0))
    tax = sum((Decimal(t) for _, _, t in lines), Decimal(0))
    invoice = Invoice.objects.create(
        customer=customer,
        currency="USD",
        subtotal=subtotal,
        tax=tax,
        total=subtotal + tax,
        amount_due=subtotal + tax,
        status=status,
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


def test_a_draft_holds_credits_release_frees_them_and_finalizing_consumes_the_hold():
    # 100 credits at $1; a $40 draft holds 40: no ledger row, the balance stays 100 (60 spendable). Releasing it
    # (before a recalculation) writes no ledger row either; the recalculated $55 draft holds 55; finalizing
    # books that hold as one consume row of 55: balance 100 - 55 = 45.
    customer = CustomerFactory()
    wallet = WalletFactory(customer=customer)
    invoice = _invoice(customer, [("usage", "40.00", "0")], status=Invoice.Status.DRAFT)
    with transaction.atomic():
        lot = grant(wallet, 100)
        invoice_credits_apply(invoice=invoice, now=T0)
        invoice_credits_apply(invoice=invoice, now=T0)  # idempotent: still one hold
    wallet.refresh_from_db()
    lot.refresh_from_db()
    invoice.refresh_from_db()
    assert (wallet.balance, lot.remaining, lot.held) == (100, 100, 40)
    assert (invoice.credits_applied, invoice.amount_due) == (Decimal(40), Decimal(0))
    assert wallet_spendable(wallet=wallet) == 60
    assert list(CreditHold.objects.filter(invoice_id=invoice.pk).values_list("credits", "status")) == [(40, "held")]
    assert list(wallet.ledger.values_list("type", flat=True)) == ["grant"]
    assert_ledger_whole(wallet)
    with transaction.atomic():
        invoice_credits_release(invoice=invoice, now=T0)
        invoice_credits_release(invoice=invoice, now=T0)  # idempotent
    lot.refresh_from_db()
    invoice.refresh_from_db()
    assert (lot.held, invoice.credits_applied, invoice.amount_due) == (0, 0, Decimal(40))
    assert list(wallet.ledger.values_list("type", flat=True)) == ["grant"]  # still no ledger row
    Invoice.objects.filter(pk=invoice.pk).update(subtotal=55, total=55, amount_due=55)
    invoice.refresh_from_db()
    with transaction.atomic():
        invoice_credits_apply(invoice=invoice, now=T0)
    lot.refresh_from_db()
    assert lot.held == 55
    invoice.refresh_from_db()
    invoice.status = Invoice.Status.FINALIZED  # what finalization does before applying credits
    with transaction.atomic():
        invoice_credits_apply(invoice=invoice, now=T0)
        invoice_credits_apply(invoice=invoice, now=T0)  # idempotent: the hold is consumed once
    invoice.refresh_from_db()
    wallet.refresh_from_db()
    lot.refresh_from_db()
    assert (invoice.credits_applied, invoice.amount_due, wallet.balance) == (Decimal(55), Decimal(0), Decimal(45))
    assert (lot.remaining, lot.held) == (45, 0)
    assert list(wallet.ledger.values_list("type", "credits")) == [("grant", 100), ("consume", -55)]
    assert list(CreditHold.objects.filter(invoice_id=invoice.pk).order_by("id").values_list("credits", "status")) == [
        (40, "released"),
        (55, "consumed"),
    ]
    assert_ledger_whole(wallet)


def test_held_credits_are_not_spent_elsewhere_nor_voided():
    # 30 credits, 20 held for a draft: a spend of 11 is refused (10 free), 10 goes through; voiding the lot
    # voids nothing more (the 20 stay held for the draft).
    customer = CustomerFactory()
    wallet = WalletFactory(customer=customer)
    invoice = _invoice(customer, [("fixed", "20.00", "0")], status=Invoice.Status.DRAFT)
    with transaction.atomic():
        lot = grant(wallet, 30)
        invoice_credits_apply(invoice=invoice, now=T0)
    with pytest.raises(Conflict):
        wallet_consume(wallet=wallet, credits=Decimal(11), reference="u", idempotency_key="s1", now=T0)
    assert wallet_consume(wallet=wallet, credits=Decimal(10), reference="u", idempotency_key="s2", now=T0) == 10
    with transaction.atomic():
        assert wallet_grant_void_locked(grant=lot, now=T0) == 0
    lot.refresh_from_db()
    assert (lot.remaining, lot.held) == (20, 20)
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
        customer=customer,
        conversion_rate=Decimal("0.05"),
        low_balance_threshold=Decimal(100),
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
    assert (purchase.total, line.kind, line.amount, line.quantity) == (
        Decimal("50.00"),
        "credit_purchase",
        Decimal("50.00"),
        1000,
    )
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


def test_held_credits_do_not_expire_while_held_and_still_pay_their_draft():
    # 30 credits expiring on day 3; a $12 draft holds 12. The day-3 run expires the 18 free credits only (lot
    # expired, 12 left, all held); finalizing on day 5 consumes the 12: balance 30 - 18 - 12 = 0.
    from datetime import timedelta

    customer = CustomerFactory()
    wallet = WalletFactory(customer=customer)
    invoice = _invoice(customer, [("fixed", "12.00", "0")], status=Invoice.Status.DRAFT)
    with transaction.atomic():
        lot = grant(wallet, 30, expires_at=T0 + timedelta(days=3))
        invoice_credits_apply(invoice=invoice, now=T0)
    assert credits_scheduled_work(now=T0 + timedelta(days=3))["grants_expired"] == 1
    lot.refresh_from_db()
    assert (lot.remaining, lot.held, lot.status) == (12, 12, "expired")
    assert credits_scheduled_work(now=T0 + timedelta(days=4))["grants_expired"] == 0  # held: nothing more expires
    invoice.status = Invoice.Status.FINALIZED
    with transaction.atomic():
        invoice_credits_apply(invoice=invoice, now=T0 + timedelta(days=5))
    wallet.refresh_from_db()
    lot.refresh_from_db()
    assert (wallet.balance, lot.remaining, lot.held) == (0, 0, 0)
    assert list(wallet.ledger.values_list("type", "credits")) == [("grant", 30), ("expire", -18), ("consume", -12)]
    assert_ledger_whole(wallet)
