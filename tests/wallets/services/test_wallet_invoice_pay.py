"""wallets.services.wallet_invoice_pay / wallet_invoice_release: wallets pay an invoice from plain money values
(invoicing passes what the invoice still owes and its usage part, and stores the money applied)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from tests.factories.customers import CustomerFactory
from tests.factories.wallets import WalletFactory
from tests.wallets.conftest import T0, assert_ledger_whole, grant
from wallets.models import CreditHold
from wallets.selectors import customer_real_time_balances
from wallets.services import wallet_invoice_pay, wallet_invoice_release

pytestmark = pytest.mark.django_db

INVOICE = 9001  # wallets keep the invoice's id only (they do not import invoicing)


def _pay(customer, *, payable, usage, hold, now=T0):
    with transaction.atomic():
        return wallet_invoice_pay(
            customer_id=customer.pk,
            currency="USD",
            invoice_id=INVOICE,
            payable=Decimal(payable),
            usage_payable=Decimal(usage),
            hold=hold,
            now=now,
            expiring_after=now,
        )


def test_a_draft_holds_what_the_real_time_balance_announced_then_finalizing_spends_the_holds():
    # Payable $96.00 of which usage $36.00. Usage-only wallet (rate 1, 1,000 credits) pays $36.00 = 36 credits;
    # all-lines wallet (rate 0.5, 100 credits = $50) pays min(60, 50) = $50.00 = 100 credits: $86.00 applied.
    # The real-time balance of the same pending amounts announces 1,000 - 36 = 964 and 100 - 100 = 0, and the
    # holds leave exactly that spendable.
    customer = CustomerFactory()
    all_lines = WalletFactory(customer=customer, conversion_rate=Decimal("0.5"))
    usage_only = WalletFactory(customer=customer, applies_to="usage")
    with transaction.atomic():
        grant(all_lines, 100)
        grant(usage_only, 1000)
    announced = customer_real_time_balances(
        customer=customer, currency="USD", pending=(Decimal("96.00"), Decimal("36.00"))
    )
    assert announced == {usage_only.pk: Decimal(964), all_lines.pk: Decimal(0)}
    assert _pay(customer, payable="96.00", usage="36.00", hold=True) == Decimal("86.00")
    assert _pay(customer, payable="96.00", usage="36.00", hold=True) is None  # holds already: nothing more
    held = dict(CreditHold.objects.filter(invoice_id=INVOICE).values_list("wallet_id", "credits"))
    assert held == {usage_only.pk: 36, all_lines.pk: 100}
    assert customer_real_time_balances(customer=customer, currency="USD", pending=(Decimal(0), Decimal(0))) == announced
    # Finalizing: each hold becomes one consume row; the figure stored when holding stays (None: nothing new).
    assert _pay(customer, payable="96.00", usage="36.00", hold=False) is None
    usage_only.refresh_from_db()
    all_lines.refresh_from_db()
    assert (usage_only.balance, all_lines.balance) == (Decimal(964), Decimal(0))
    assert list(usage_only.ledger.values_list("type", "credits", "invoice_id")) == [
        ("grant", 1000, None),
        ("consume", -36, INVOICE),
    ]
    assert _pay(customer, payable="96.00", usage="36.00", hold=False) is None  # consumed already
    assert_ledger_whole(usage_only)
    assert_ledger_whole(all_lines)


def test_release_gives_holds_up_without_a_ledger_row_and_consumed_credits_back_as_adjustments():
    # 50 credits (rate 1). A $20.00 draft holds 20; releasing frees them with no ledger row. Paid at once
    # instead ($20.00 -> one consume of 20), releasing gives the 20 back as one adjustment row: balance 50.
    customer = CustomerFactory()
    wallet = WalletFactory(customer=customer)
    with transaction.atomic():
        lot = grant(wallet, 50)
    assert _pay(customer, payable="20.00", usage="0", hold=True) == Decimal("20.00")
    with transaction.atomic():
        assert (
            wallet_invoice_release(
                customer_id=customer.pk, currency="USD", invoice_id=INVOICE, now=T0, reason="recalculated"
            )
            == 0
        )
    lot.refresh_from_db()
    assert lot.held == 0 and list(wallet.ledger.values_list("type", flat=True)) == ["grant"]
    assert _pay(customer, payable="20.00", usage="0", hold=False) == Decimal("20.00")
    with transaction.atomic():
        given = wallet_invoice_release(
            customer_id=customer.pk, currency="USD", invoice_id=INVOICE, now=T0, reason="void"
        )
        again = wallet_invoice_release(
            customer_id=customer.pk, currency="USD", invoice_id=INVOICE, now=T0, reason="void"
        )
    wallet.refresh_from_db()
    assert (given, again, wallet.balance) == (Decimal(20), Decimal(0), Decimal(50))
    assert list(wallet.ledger.values_list("type", "credits")) == [("grant", 50), ("consume", -20), ("adjustment", 20)]
    assert_ledger_whole(wallet)
