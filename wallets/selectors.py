"""Wallet reads: balances, the real-time balance, ledger checks, lists."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import QuerySet, Sum

from catalog.pricing import currency_exponent
from customers.models import Customer
from wallets.credits import Payer, invoice_payment_plan

from .models import CreditGrant, CreditHold, LedgerEntry, Wallet


@dataclass(frozen=True)
class LedgerCheck:
    """A wallet's cached balance against the sum of its ledger and of its lots' remaining credits, and its
    lots' cached held credits against the sum of its live holds."""

    balance: Decimal
    ledger_sum: Decimal
    lots_remaining: Decimal
    lots_held: Decimal = Decimal(0)
    holds_sum: Decimal = Decimal(0)

    @property
    def ok(self) -> bool:
        return self.balance == self.ledger_sum == self.lots_remaining and self.lots_held == self.holds_sum


def wallet_ledger_check(*, wallet: Wallet) -> LedgerCheck:
    """Balance (cached), ledger sum and the lots' remaining credits: all three are always equal; so are the
    lots' held credits and the credits of the wallet's live holds (a hold books no ledger row)."""
    balance = Wallet.objects.values_list("balance", flat=True).get(pk=wallet.pk)
    ledger_sum = LedgerEntry.objects.filter(wallet=wallet).aggregate(s=Sum("credits"))["s"] or Decimal(0)
    lots = CreditGrant.objects.filter(wallet=wallet).aggregate(r=Sum("remaining"), h=Sum("held"))
    holds = CreditHold.objects.filter(wallet=wallet, status=CreditHold.Status.HELD).aggregate(s=Sum("credits"))["s"]
    return LedgerCheck(
        balance=balance,
        ledger_sum=ledger_sum,
        lots_remaining=lots["r"] or Decimal(0),
        lots_held=lots["h"] or Decimal(0),
        holds_sum=holds or Decimal(0),
    )


def wallets_held(*, wallet_ids: list[int]) -> dict[int, Decimal]:
    """Credits each wallet's lots hold for draft invoices (absent: none)."""
    rows = (
        CreditGrant.objects.filter(wallet_id__in=wallet_ids, held__gt=0)
        .values("wallet_id")
        .annotate(s=Sum("held"))
        .values_list("wallet_id", "s")
    )
    return dict(rows)


def wallets_payment_order(wallets: list[Wallet]) -> list[Wallet]:
    """The order wallets pay an invoice in: usage-only wallets first, then all-lines wallets, oldest first."""
    return sorted(wallets, key=lambda w: (w.applies_to != Wallet.AppliesTo.USAGE, w.created_at, w.pk))


def customer_real_time_balances(
    *, customer: Customer, currency: str, pending: tuple[Decimal, Decimal]
) -> dict[int, Decimal]:
    """Each active wallet's real-time balance: its balance, less the credits held for draft invoices, less
    what the pending payable will take from it (never below 0; Lago's ongoing balance).

    ``pending`` is ``(payable_by_all_lines_wallets, payable_by_usage_only_wallets)`` in money, as
    invoicing.selectors.customer_pending_payable returns it (wallets does not import invoicing): what is not
    held yet. The wallets pay it as they pay an invoice (the same loop, ``wallets.credits.invoice_payment_plan``):
    usage-only wallets first from the usage part, then all-lines wallets from what is left, oldest first, each
    at its own rate.
    """
    all_payable, usage_payable = pending
    wallets = list(Wallet.objects.filter(customer=customer, currency=currency, status=Wallet.Status.ACTIVE))
    held = wallets_held(wallet_ids=[w.pk for w in wallets])
    ordered = wallets_payment_order(wallets)
    free = {w.pk: max(w.balance - held.get(w.pk, Decimal(0)), Decimal(0)) for w in ordered}
    payers = [
        Payer(id=w.pk, usage_only=w.applies_to == Wallet.AppliesTo.USAGE, available=free[w.pk], rate=w.conversion_rate)
        for w in ordered
    ]
    plan = invoice_payment_plan(payers, all_payable, usage_payable, currency_exponent(currency))
    spent = {payment.payer_id: payment.credits for payment in plan}
    return {w.pk: max(free[w.pk] - spent.get(w.pk, Decimal(0)), Decimal(0)) for w in ordered}


def wallet_real_time_balance(*, wallet: Wallet, pending: tuple[Decimal, Decimal]) -> Decimal:
    """The wallet's real-time balance given its customer's pending payable (see customer_real_time_balances)."""
    if wallet.status != Wallet.Status.ACTIVE:
        return max(wallet.balance - wallets_held(wallet_ids=[wallet.pk]).get(wallet.pk, Decimal(0)), Decimal(0))
    balances = customer_real_time_balances(customer=wallet.customer, currency=wallet.currency, pending=pending)
    return balances[wallet.pk]


def customer_wallet_list(*, customer: Customer) -> QuerySet[Wallet]:
    return Wallet.objects.filter(customer=customer).select_related("customer").order_by("created_at", "id")


def wallet_grant_list(*, wallet: Wallet) -> QuerySet[CreditGrant]:
    return CreditGrant.objects.filter(wallet=wallet).order_by("priority", "expires_at", "created_at", "id")


def wallet_ledger_list(*, wallet: Wallet) -> QuerySet[LedgerEntry]:
    return LedgerEntry.objects.filter(wallet=wallet).order_by("id")
