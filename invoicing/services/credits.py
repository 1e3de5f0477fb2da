"""Where invoicing meets wallets: the calls the period boundary and finalization make into wallet services.

Order at a boundary (DESIGN.md, Wallets and credits): the boundary invoice is computed, then
``invoice_credits_apply`` (credits of the ended period pay its charges first; for a draft waiting out its
grace period the credits are held for it now, before rollover and expiry), then ``plan_credits_close_period``
(rollover up to the cap, the rest expires; forfeited when the subscription ends), then the subscription
advances and ``plan_credits_grant`` gives the new period's credits.

Wallets own paying an invoice with credits (``wallets.services.invoice_payment``: which wallets pay and in what
order, the lots, the holds, the ledger rows); this module passes them plain values (what the invoice still owes,
its usage lines with their tax) and stores the money applied on the invoice.

Rules chosen where the design is silent:

* **A hold is a reservation, not a spend** (DESIGN.md). Credits for a draft are held
  (``wallets.services.holds``: a ``CreditHold`` per lot, the lot's ``held`` raised), with no ledger row: the
  wallet's balance does not move, the real-time balance counts the hold, and held credits neither expire nor
  roll over while held. Finalizing the draft turns each hold into one ``consume`` row carrying the invoice's
  id; ``invoice.credits_applied`` shows the money worth throughout. Recalculating the draft releases the holds
  (no ledger row) and holds again for the new total. A lot that expired or rolled over while its credits were
  held keeps them for the re-application only: whatever it does not hold again expires at once (``expire``
  rows), so no period's credits outlive it.
* Credits applied to a finalized invoice are ``consume`` rows at once; voiding the invoice gives each lot back
  exactly what it gave (``adjustment`` rows).
* **What credits may pay:** an all-lines wallet pays the invoice total (tax included), a usage-only wallet
  the usage lines (less their coupon discount) plus their tax; never more than the invoice still owes
  (total - credit notes - paid).
  Usage-only wallets pay first, then all-lines wallets, oldest first; money is rounded down to the minor
  unit (wallets.credits.invoice_payment_plan).
* **A lot expiring exactly at the invoice's boundary still pays it** (credits pay their period first).
* **Credits never pay a credit-purchase invoice.**
* **Credit purchases are not taxed** (tax is charged when the credits pay taxed invoices); an auto top-up's
  purchase invoice has one ``credit_purchase`` line priced at credits x conversion rate
  (``invoices.credit_purchase_invoice_create``, passed in as ``top_up``: this module imports no other service
  module of invoicing, so the service modules import each other in one direction only).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Q

from catalog.models import PlanCreditGrant
from customers.models import Customer, Subscription
from customers.periods import Period
from wallets.models import CreditGrant, Wallet
from wallets.services import (
    plan_credits_change,
    plan_credits_close,
    plan_credits_grant_period,
    wallet_balance_check_locked,
    wallet_grant_revoke_locked,
    wallet_grants_expire,
    wallet_invoice_pay,
    wallet_invoice_release,
)
from wallets.services.alerts import TopUp

from ..models import Invoice, InvoiceLine


def plan_credits_grant(
    *,
    subscription: Subscription,
    period: Period,
    now: datetime,
    plan_grants: Sequence[PlanCreditGrant] | None = None,
    share: tuple[int, int] | None = None,
) -> None:
    """Grant the period's plan credits (subscription.plan_version's grants) to the customer's wallet. Idempotent.

    Call inside a transaction (the boundary's). ``plan_grants``: the version's grants when the caller read
    them already (a run's price sheets), so a version without any costs no query; else they are read.
    ``share = (days, days_in_period)``: a plan change's part period (``wallets.services.plan_credit_grant_create``).
    """
    plan_credits_grant_period(subscription=subscription, period=period, now=now, plan_grants=plan_grants, share=share)


def plan_credits_follow_change(
    *,
    previous: Subscription,
    successor: Subscription,
    period: Period,
    at: datetime,
    used_days: int,
    days_in_period: int,
    now: datetime,
) -> Decimal:
    """A plan change's effect on the old plan's credits (``wallets.services.plan_credits_change``): the period's
    grant cut to its used share, the rest closed as at a period end, what carries moved to the successor."""
    return plan_credits_change(
        previous=previous,
        successor=successor,
        period=period,
        at=at,
        used_days=used_days,
        days_in_period=days_in_period,
        now=now,
    )


def _owed(invoice: Invoice) -> Decimal:
    """What the invoice still asks for before wallet credits: total - credit notes - paid (never below 0)."""
    return max(invoice.total - invoice.credit_notes_total - invoice.amount_paid, Decimal(0))


def _usage_payable(invoice: Invoice) -> Decimal:
    """What usage-only wallets may pay: the invoice's usage lines less their coupon discount and their share of
    the progressive billing credit (that usage was paid on the progressive invoices), with their tax."""
    return sum(
        (
            line.amount - line.discount - line.progressive_billing_credit + line.tax
            for line in invoice.lines.filter(kind=InvoiceLine.Kind.USAGE)
        ),
        Decimal(0),
    )


def _set_credits_applied(invoice: Invoice, money: Decimal) -> None:
    """Store ``money`` (>= 0) as the credits applied; ``amount_due`` is what is owed beyond it."""
    invoice.credits_applied = money
    invoice.amount_due = max(_owed(invoice) - money, Decimal(0))
    invoice.save(update_fields=["credits_applied", "amount_due", "updated_at"])


def _sync_credits(target: Invoice, source: Invoice) -> None:
    """Copy the stored credit figures onto the caller's invoice object, which may be saved again later."""
    target.credits_applied = source.credits_applied
    target.amount_due = source.amount_due


def _lock_customer(invoice: Invoice) -> None:
    """Lock the invoice's customer: first in the lock order, before the invoice and the customer's wallets."""
    Customer.objects.select_for_update().get(pk=invoice.customer_id)


@transaction.atomic(savepoint=False)
def invoice_credits_apply(*, invoice: Invoice, now: datetime, top_up: TopUp, has_wallets: bool = True) -> None:
    """Hold wallet credits for a draft, or apply them to an invoice being finalized; sets credits_applied.

    ``invoice.status`` as the caller holds it decides: a draft gets holds (no ledger row, the balance does not
    move); an invoice the caller is finalizing (status already set to finalized in memory) gets ``consume``
    rows -- its draft's holds become those rows, or, when nothing was held, the credits are applied now.
    Idempotent: an invoice already holding or having consumed credits is left as it is (release first to
    re-apply). Wallets do the paying (``wallets.services.wallet_invoice_pay``) from plain values read here:
    what the invoice still owes and its usage lines with their tax. One transaction (call inside the
    caller's); locks in the order customer -> invoice (the callers finalizing or recalculating hold it
    already) -> wallets -> lots.

    ``top_up``: what an auto top-up triggered by the payment buys besides its credits (the purchase invoice,
    ``invoices.credit_purchase_invoice_create``; passed in because finalizing it comes back here).
    ``has_wallets=False``: the caller holds the customer's lock and found it has no wallet at all, so nothing
    can pay the invoice and nothing can be held for it: ``credits_applied`` is 0 with no query (the same
    figures the full path would store; the caller saves the invoice).
    """
    if not has_wallets:
        if invoice.kind != Invoice.Kind.CREDIT_PURCHASE:
            invoice.credits_applied = Decimal(0)
            invoice.amount_due = _owed(invoice)
        return
    _lock_customer(invoice)
    locked = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if (
        locked.status not in (Invoice.Status.DRAFT, Invoice.Status.FINALIZED)
        or locked.kind == Invoice.Kind.CREDIT_PURCHASE
    ):
        _sync_credits(invoice, locked)  # nothing to pay; and credits never pay for credits
        return
    applied = wallet_invoice_pay(
        customer_id=invoice.customer_id,
        currency=invoice.currency,
        invoice_id=invoice.pk,
        payable=_owed(locked),
        usage_payable=_usage_payable(locked),
        hold=invoice.status == Invoice.Status.DRAFT,
        now=now,
        expiring_after=invoice.billing_boundary_at or now,
        top_up=top_up,
    )
    if applied is not None:
        _set_credits_applied(locked, applied)
    _sync_credits(invoice, locked)  # applied now, or the figures stored when the credits were first applied


@transaction.atomic(savepoint=False)
def invoice_credits_release(
    *, invoice: Invoice, now: datetime, reason: str = "Released from a draft invoice before recalculation"
) -> None:
    """Give back credits held for a draft (before it is recalculated) or applied to an invoice being voided.

    Idempotent. Call inside a transaction. The wallets give them back (``wallets.services.
    wallet_invoice_release``: holds released with no ledger row, consumed credits back to their lots as
    ``adjustment`` rows); the invoice's credits applied become 0. Lock order customer -> invoice -> wallets ->
    lots.
    """
    _lock_customer(invoice)
    wallet_invoice_release(
        customer_id=invoice.customer_id, currency=invoice.currency, invoice_id=invoice.pk, now=now, reason=reason
    )
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.credits_applied:
        _set_credits_applied(invoice, Decimal(0))


def plan_credits_close_period(*, subscription: Subscription, period: Period, ending: bool, now: datetime) -> None:
    """At a period's end: carry unused plan credits up to the rollover cap, expire the rest. Idempotent.

    Call inside a transaction, after ``invoice_credits_apply`` of the period's invoice.
    """
    plan_credits_close(subscription=subscription, period=period, ending=ending, now=now)


def credit_purchase_grant(invoice: Invoice) -> tuple[CreditGrant | None, Decimal]:
    """The paid grant a credit-purchase invoice bills, and the price per credit it charged (its line's unit amount)."""
    line = invoice.lines.filter(kind=InvoiceLine.Kind.CREDIT_PURCHASE).order_by("position", "id").first()
    if line is None:
        return None, Decimal(1)
    grant_id = str((line.details or {}).get("grant", ""))
    grant = CreditGrant.objects.filter(pk=int(grant_id)).first() if grant_id.isascii() and grant_id.isdigit() else None
    return grant, Decimal(line.unit_amount or 1)


def credit_purchase_revoke(*, invoice: Invoice, credits: Decimal, key: str, reason: str) -> Decimal:
    """Take ``credits`` of a purchase invoice's grant back (a ``void`` row), as a credit note or void of it asks.

    Conflict (409) when fewer of them are unspent. Call inside a transaction holding the customer lock.
    """
    grant, _ = credit_purchase_grant(invoice)
    if grant is None or credits <= 0:
        return Decimal(0)
    return wallet_grant_revoke_locked(grant=grant, credits=credits, key=key, reason=reason)


def credits_scheduled_work(*, now: datetime, top_up: TopUp, customer_external_id: str | None = None) -> dict:
    """Run-time wallet work: expire grants past expires_at, low-balance alerts and auto top-ups. Returns counts.

    ``top_up``: what an auto top-up buys besides its credits (``invoices.credit_purchase_invoice_create``).

    One transaction per wallet (nested in the caller's if there is one), so one wallet's failure never
    undoes another's work. Idempotent: a second run at the same instant finds nothing to do.
    """
    counts = {"grants_expired": 0, "alerts": 0, "top_ups": 0}
    wallets = Wallet.objects.filter(Q(status=Wallet.Status.ACTIVE) | Q(balance__gt=0))
    if customer_external_id:
        wallets = wallets.filter(customer__external_id=customer_external_id)
    for wallet_id in wallets.order_by("id").values_list("id", flat=True):
        with transaction.atomic():
            Customer.objects.select_for_update(of=("self",)).filter(wallets__pk=wallet_id).first()
            wallet = Wallet.objects.get(pk=wallet_id)
            counts["grants_expired"] += wallet_grants_expire(wallet=wallet, now=now)
            alert = wallet_balance_check_locked(wallet=wallet, now=now, top_up=top_up)
            if alert is not None:
                counts["alerts"] += 1
                counts["top_ups"] += 1 if alert.top_up_grant_id else 0
    return counts
