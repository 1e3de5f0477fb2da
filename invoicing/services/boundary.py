"""The period boundary, orchestrated in one place (DESIGN.md): invoices, plan credits, rollover, next period.

One subscription boundary runs in one transaction. Lock order, everywhere: customer -> wallets (inside the
credits seam) -> subscription row FOR UPDATE -> invoice. After locking, the subscription's state is read
again (still active, ``current_period_end`` still the boundary due), so concurrent runs bill a boundary once;
``invoice_unique_subscription_boundary`` makes a second invoice impossible even without the locks.

At a boundary ``T = current_period_end <= now`` (order from the wallets seam's contract):

1. one invoice for ``(subscription, billing_boundary_at=T)``: the ended period's in-arrears lines (priced
   with the version that billed it) and, unless the subscription ends at ``T``, the new period's in-advance
   fees priced with the version in effect for the NEW period; invoice period = the ended period;
2. ``invoice_credits_apply`` (credits of the ended period pay its charges first, or are held for a draft),
   then finalization when the customer's ``invoice_grace_days`` is 0 (else a draft, finalized by the
   first run at or after ``created + grace days``);
3. ``plan_credits_close_period`` (rollover / expiry; forfeit when ending);
4. the subscription advances to its next period (or ends, when canceled at period end);
5. ``plan_credits_grant`` for the new period.

Work per boundary in a run (``subscription_bill_once``), a constant whatever the number of prices: lock the
customer (reading along whether it has a wallet and its tax rates), lock the subscription (reading along
its plan, versions and the version in effect for the next period), insert the invoice (``ON CONFLICT DO
NOTHING``), insert its lines (one statement), update the subscription, take the number, update the
invoice: 7 statements between ``BEGIN`` and ``COMMIT``. Usage comes aggregated per batch of subscriptions
(``run.usage_prefetch``); prices, tiers, meters and plan credit grants of published versions are read
once per process. Rules chosen for speed, none changing a result:

* a customer with no wallet at all (read under its lock) has no credits to apply and no plan lots to roll
  over, so credit application and period close are not called for it (``credits_applied`` is 0, as the
  seam would find); the new period's plan credits are granted as always (that creates the wallet);
* the period advance is written without a change-history row (``customers.services.
  subscription_advance_locked`` says why); ending at period end keeps its history row.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from catalog.models import Plan, PlanVersion
from customers import periods
from customers.models import Customer, Subscription
from customers.periods import Period
from customers.selectors import subscription_version_for
from customers.services import subscription_advance_locked, subscription_create
from wallets.models import Wallet

from ..models import Invoice
from . import credits as credits_seam
from .invoices import (
    invoice_create_for_period,
    invoice_credits_settle,
    invoice_finalize_number,
    invoice_finalize_prepare,
)
from .lines import LineDraft, advance_lines, arrears_lines
from .locks import customer_lock_for_boundary, subscription_lock_for_boundary


def _lock_customer(customer_id: int) -> Customer:
    return Customer.objects.select_for_update().get(pk=customer_id)


def _lock_subscription(subscription_id: int) -> Subscription:
    return (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("customer", "plan", "plan_version", "plan_version__plan", "pinned_version")
        .get(pk=subscription_id)
    )


def _next_version(subscription: Subscription, new_start: datetime) -> PlanVersion | None:
    """The version for the period starting at ``new_start`` (``subscription_version_for``), using the id the
    locking query read when it answers for that instant (once: the row moves on after this boundary)."""
    carried = subscription.__dict__.pop("next_version_id", False)
    if subscription.pinned_version_id or carried is False or new_start != subscription.current_period_end:
        return subscription_version_for(subscription=subscription, period_start=new_start)
    if carried is None:
        return None
    if carried == subscription.plan_version_id:
        return subscription.plan_version
    return PlanVersion.objects.select_related("plan").get(pk=carried)


def _has_wallets(customer: Customer) -> bool:
    """Whether the customer has a wallet; the flag read with the customer lock serves one boundary only (a
    boundary may create the plan-credit wallet, so a later boundary in the same transaction asks again)."""
    flag = customer.__dict__.pop("has_wallets", None)
    if flag is None:
        flag = Wallet.objects.filter(customer=customer).exists()
    return flag


def version_for_period(subscription: Subscription, period: Period) -> PlanVersion:
    """The version billing ``period``: pinned, else in effect at its start; the current one if none is."""
    return subscription_version_for(subscription=subscription, period_start=period.start) or subscription.plan_version


def boundary_lines_for(
    *,
    subscription: Subscription,
    ended: Period,
    ended_version: PlanVersion,
    ending: bool,
    usage=None,
    new_version: PlanVersion | None = None,
) -> list[LineDraft]:
    """Lines of the invoice at ``ended.end``: ended period's arrears + (unless ending) next period's advance fees.

    ``new_version``: the version for the next period when the caller already resolved it.
    """
    currency = subscription.customer.currency
    lines = arrears_lines(subscription=subscription, version=ended_version, period=ended, currency=currency, usage=usage)
    if not ending:
        new_period = periods.next_period(subscription.billing, subscription.start_at, subscription.plan.interval, ended)
        lines += advance_lines(
            subscription=subscription, version=new_version or version_for_period(subscription, new_period),
            period=new_period, currency=currency,
        )
    return lines


def boundary_lines(*, subscription: Subscription, invoice: Invoice) -> list[LineDraft]:
    """Rebuild the lines of a stored subscription invoice from events (draft recalculation)."""
    period = Period(invoice.period_start, invoice.period_end)
    currency = invoice.currency
    if invoice.billing_boundary_at == invoice.period_start:
        # The start invoice: the first period's in-advance fees.
        return advance_lines(
            subscription=subscription, version=version_for_period(subscription, period), period=period, currency=currency
        )
    ended_at = subscription.ended_at
    ending = ended_at is not None and ended_at <= invoice.billing_boundary_at
    full_end = periods.period_containing(subscription.billing, subscription.start_at, subscription.plan.interval, period.start).end
    if period.end != full_end:
        ending = True  # a period cut short by an immediate cancellation has no next period
    return boundary_lines_for(
        subscription=subscription, ended=period, ended_version=version_for_period(subscription, period), ending=ending
    )


def _finalize_or_wait(invoice: Invoice, *, now: datetime, has_wallets: bool = True) -> bool:
    """Grace 0: finalize now (credits applied here; number taken by ``invoice_finalize_number`` at the end
    of the transaction); else hold credits for the draft. Returns whether the invoice needs its number.

    ``has_wallets=False``: the (locked) customer has no wallet, so no credits are looked for."""
    if invoice.customer.invoice_grace_days == 0:
        invoice_finalize_prepare(invoice=invoice, now=now, has_wallets=has_wallets)
        return True
    invoice_credits_settle(invoice=invoice, now=now, has_wallets=has_wallets)
    return False


@transaction.atomic(savepoint=False)
def subscription_boundary_bill_locked(*, subscription: Subscription, now: datetime, usage=None) -> Invoice | None:
    """Bill the locked subscription's due boundary (see the module docstring). Call inside a transaction,
    holding the customer and subscription locks. Returns the new invoice, or ``None`` when nothing was due
    or the boundary was already billed.

    ``usage`` may be ``(period_start, period_end, plan_version_id, {(external_id, meter_id): value})``
    aggregated beforehand for many customers at once (batch runs); it is used only when it matches the
    locked subscription's ended period and version.
    """
    if subscription.status != Subscription.Status.ACTIVE or subscription.current_period_end > now:
        return None
    boundary = subscription.current_period_end
    ended = Period(subscription.current_period_start, boundary)
    ending = subscription.cancel_at_period_end
    has_wallets = _has_wallets(subscription.customer)
    if usage is not None and (usage[0], usage[1], usage[2]) != (ended.start, ended.end, subscription.plan_version_id):
        usage = None  # pre-aggregated for another period or version: query the meters instead
    usage = usage[3] if usage is not None else None
    new_version = None
    if not ending:
        # Resolved once: it prices the new period's advance fees and becomes the row's plan_version.
        new_start = periods.next_period(subscription.billing, subscription.start_at, subscription.plan.interval, ended).start
        new_version = _next_version(subscription, new_start)
    lines = boundary_lines_for(
        subscription=subscription, ended=ended, ended_version=subscription.plan_version, ending=ending, usage=usage,
        new_version=new_version,
    )
    invoice = invoice_create_for_period(
        customer=subscription.customer, subscription=subscription, boundary_at=boundary, period=ended, lines=lines, now=now
    )
    needs_number = invoice is not None and _finalize_or_wait(invoice, now=now, has_wallets=has_wallets)
    if has_wallets:  # no wallet: no plan lots to roll over or expire
        credits_seam.plan_credits_close_period(subscription=subscription, period=ended, ending=ending, now=now)
    subscription_advance_locked(subscription=subscription, now=now, next_version=new_version)
    if not ending:
        credits_seam.plan_credits_grant(
            subscription=subscription,
            period=Period(subscription.current_period_start, subscription.current_period_end),
            now=now,
        )
    if needs_number:
        # Last: the gapless sequence stays locked from here to commit, so concurrent runs queue briefly.
        invoice_finalize_number(invoice=invoice, now=now)
    return invoice


class CustomerBusy(Exception):
    """``subscription_bill_once(skip_locked=True)`` found the customer locked by another transaction."""


def subscription_bill_once(
    *, subscription_id: int, now: datetime, usage=None, skip_locked: bool = False
) -> tuple[bool, Invoice | None]:
    """One boundary of one subscription in its own transaction. ``(processed, invoice)``.

    ``processed`` is False when nothing was due (ended, caught up, or advanced by a concurrent run).
    ``skip_locked``: raise :class:`CustomerBusy` instead of waiting when the customer is locked (a parallel
    run billing it, or any other write on the customer); the caller comes back to it later.
    """
    with transaction.atomic(durable=True):
        # Lock order: the customer first (one query through the subscription), then the subscription.
        customer = customer_lock_for_boundary(subscription_id=subscription_id, skip_locked=skip_locked)
        if customer is None:
            if skip_locked:
                raise CustomerBusy(subscription_id)
            return False, None
        subscription = subscription_lock_for_boundary(subscription_id=subscription_id)
        if subscription is None or subscription.status != Subscription.Status.ACTIVE or subscription.current_period_end > now:
            return False, None
        subscription.customer = customer  # the locked row, with its wallet flag and tax rates
        return True, subscription_boundary_bill_locked(subscription=subscription, now=now, usage=usage)


def subscription_catch_up(*, subscription_id: int, now: datetime) -> tuple[int, int]:
    """Bill every boundary due at or before ``now``, oldest first, one transaction each.

    Returns ``(boundaries processed, invoices created)``. Idempotent: a later call finds nothing due.
    """
    boundaries = invoices = 0
    while True:
        processed, invoice = subscription_bill_once(subscription_id=subscription_id, now=now)
        if not processed:
            return boundaries, invoices
        boundaries += 1
        invoices += invoice is not None


@transaction.atomic(savepoint=False)
def subscription_start_locked(
    *,
    customer: Customer,
    plan: Plan,
    start_at: datetime,
    billing: str,
    pinned_version: PlanVersion | None,
    now: datetime,
) -> Subscription:
    """``subscription_start`` inside the caller's transaction: the first period's start work only."""
    customer = _lock_customer(customer.pk)
    subscription = subscription_create(
        customer=customer, plan=plan, start_at=start_at, billing=billing, pinned_version=pinned_version
    )
    subscription = _lock_subscription(subscription.pk)
    first = Period(subscription.current_period_start, subscription.current_period_end)
    credits_seam.plan_credits_grant(subscription=subscription, period=first, now=now)
    lines = advance_lines(
        subscription=subscription, version=subscription.plan_version, period=first, currency=customer.currency
    )
    invoice = invoice_create_for_period(
        customer=subscription.customer, subscription=subscription, boundary_at=first.start, period=first,
        lines=lines, now=now,
    )
    if invoice is not None and _finalize_or_wait(invoice, now=now):
        invoice_finalize_number(invoice=invoice, now=now)
    return subscription


@transaction.atomic(durable=True)
def subscription_start(
    *,
    customer: Customer,
    plan: Plan,
    start_at: datetime,
    billing: str,
    pinned_version: PlanVersion | None,
    now: datetime,
) -> Subscription:
    """Create a subscription and do its first period's start work at once (plan credits, in-advance invoice).

    The first period's in-advance fixed fees are prorated by whole days for a partial calendar period.
    Only the first period, the one containing ``start_at``, is started here, even when ``start_at`` is in the
    past (DESIGN.md): every later boundary is a billing run's work (``run_billing --now T``, or the beat task
    at its next tick), one boundary per period, so the subscription's ``current_period_*`` stay on the first
    period until a run advances them. Creating a subscription therefore does a bounded amount of work, and a
    suite stepping time with ``run_billing --now`` sees each boundary billed by the run that reaches it.
    """
    return subscription_start_locked(
        customer=customer, plan=plan, start_at=start_at, billing=billing, pinned_version=pinned_version, now=now
    )


@transaction.atomic(durable=True)
def subscription_cancel(*, subscription: Subscription, at: str, now: datetime) -> Subscription:
    """Cancel at ``period_end`` (stays active until its period ends) or ``now`` (ends at once).

    Canceling an ended subscription is a Conflict (409). Ending now bills what the ended part owes: an
    invoice at the end instant with the part period's in-arrears lines (fixed fees in arrears prorated by
    whole days); fees paid in advance are not refunded here (a credit note does that).
    """
    from customers.services import subscription_cancel as cancel_row

    _lock_customer(subscription.customer_id)
    locked = _lock_subscription(subscription.pk)
    part_start = locked.current_period_start
    version = locked.plan_version
    subscription = cancel_row(subscription=locked, at=at, now=now)
    if subscription.status == Subscription.Status.ENDED and subscription.ended_at and subscription.ended_at > part_start:
        part = Period(part_start, subscription.ended_at)
        lines = arrears_lines(subscription=subscription, version=version, period=part, currency=subscription.customer.currency)
        invoice = invoice_create_for_period(
            customer=subscription.customer, subscription=subscription, boundary_at=part.end, period=part,
            lines=lines, now=now,
        )
        needs_number = invoice is not None and _finalize_or_wait(invoice, now=now)
        credits_seam.plan_credits_close_period(subscription=subscription, period=part, ending=True, now=now)
        if needs_number:
            invoice_finalize_number(invoice=invoice, now=now)
    return subscription
