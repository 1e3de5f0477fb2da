"""The period boundary, orchestrated in one place (DESIGN.md): invoices, plan credits, rollover, next period.

One subscription boundary runs in one transaction. Lock order: the customer first, always (every write that
touches a customer's subscriptions, invoices or wallets takes that lock first, so the locks after it cannot
deadlock), then the subscription row FOR UPDATE, the invoice, and the wallets and lots (inside the wallets
seam). After locking, the subscription's state is read again (still active, ``current_period_end`` still the
boundary due), so concurrent runs bill a boundary once;
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
invoice: 7 statements between ``BEGIN`` and ``COMMIT``. What the locks read along travels in a typed
``context.BoundaryContext``, passed explicitly. Usage, and the price sheets (prices, tiers, meters with their
filters, plan credit grants) of the batch's versions, are read once per batch of subscriptions
(``run.batch_prefetch``), never kept longer: a meter filter edited in the admin counts from the next batch.
Rules chosen for speed, none changing a result:

* a customer with no wallet at all (read under its lock) has no credits to apply and no plan lots to roll
  over, so credit application and period close are not called for it (``credits_applied`` is 0, as the
  seam would find); the new period's plan credits are granted as always (that creates the wallet);
* the period advance is written without a change-history row (``customers.services.
  subscription_row_advance_locked`` says why); ending at period end keeps its history row.

Starting and canceling a subscription are the lifecycle's other verbs, beside this module in ``lifecycle.py``.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from catalog.models import PlanVersion
from customers.models import Subscription
from customers.periods import Period
from customers.services import subscription_row_advance_locked

from ..models import Invoice
from . import credits as credits_seam
from .changes import scheduled_change_bill_locked
from .context import NO_SHEETS, BoundaryContext, PriceSheets, UsageBatch, version_credit_grants
from .invoices import invoice_create_for_period, invoice_finalize_number, invoice_finalize_or_hold
from .lines import boundary_lines_for
from .locks import boundary_lock
from .period_close import period_close_terms_apply
from .trials import trial_end_bill_locked


def _next_version(subscription: Subscription, context: BoundaryContext) -> PlanVersion | None:
    """The version for the period starting at the boundary (``subscription_version_for`` there), from the
    context: the id the lock read, loaded unless it is the current version."""
    carried = context.next_version
    if carried is None or isinstance(carried, PlanVersion):
        return carried
    if carried == subscription.plan_version_id:
        return subscription.plan_version
    return PlanVersion.objects.select_related("plan").get(pk=carried)


@transaction.atomic(savepoint=False)
def subscription_boundary_bill_locked(
    *, subscription: Subscription, now: datetime, context: BoundaryContext
) -> Invoice | None:
    """Bill the locked subscription's due boundary (see the module docstring). Call inside a transaction,
    holding the customer and subscription locks. Returns the new invoice, or ``None`` when nothing was due
    or the boundary was already billed.

    ``context``: read for this boundary (``locks.boundary_lock``, or ``context.boundary_context_read``); one
    read for another boundary is refused (``ValueError``), as its wallet flag may be stale.
    """
    if subscription.status != Subscription.Status.ACTIVE or subscription.current_period_end > now:
        return None
    boundary = subscription.current_period_end
    if context.boundary_at != boundary or context.customer.pk != subscription.customer_id:
        raise ValueError(
            f"the boundary context was read for {context.boundary_at.isoformat()}, not {boundary.isoformat()}"
        )
    if subscription.trial_end is not None:  # a trial ending inside this period is billed before its end
        trial_end_bill_locked(subscription=subscription, now=now)
    if subscription.scheduled_plan_id is not None and not subscription.cancel_at_period_end:
        return scheduled_change_bill_locked(subscription=subscription, now=now, context=context)
    ended = Period(subscription.current_period_start, boundary)
    ending = subscription.cancel_at_period_end
    # Resolved once: it prices the new period's advance fees and becomes the row's plan_version.
    new_version = None if ending else _next_version(subscription, context)
    lines = boundary_lines_for(
        subscription=subscription,
        ended=ended,
        ended_version=subscription.plan_version,
        ending=ending,
        usage=context.usage,
        new_version=new_version,
        sheets=context.sheets,
    )
    lines = period_close_terms_apply(
        lines=lines,
        subscription=subscription,
        period=ended,
        version=subscription.plan_version,
        currency=subscription.customer.currency,
    )
    invoice = invoice_create_for_period(
        customer=subscription.customer,
        subscription=subscription,
        boundary_at=boundary,
        period=ended,
        lines=lines,
        now=now,
        tax_rates=context.tax_rates,
        reason=Invoice.Reason.BOUNDARY,
        has_coupons=context.has_coupons,
    )
    needs_number = invoice is not None and invoice_finalize_or_hold(
        invoice=invoice, now=now, has_wallets=context.has_wallets
    )
    if context.has_wallets:  # no wallet: no plan lots to roll over or expire
        credits_seam.plan_credits_close_period(subscription=subscription, period=ended, ending=ending, now=now)
    subscription_row_advance_locked(subscription=subscription, now=now, next_version=new_version)
    if not ending:
        credits_seam.plan_credits_grant(
            subscription=subscription,
            period=Period(subscription.current_period_start, subscription.current_period_end),
            now=now,
            plan_grants=version_credit_grants(subscription.plan_version, context.sheets),
        )
    if needs_number:
        # Last: the gapless sequence stays locked from here to commit, so concurrent runs queue briefly.
        invoice_finalize_number(invoice=invoice, now=now)
    return invoice


class CustomerBusy(Exception):
    """``subscription_bill_once(skip_locked=True)`` found the customer locked by another transaction."""


def subscription_bill_once(
    *,
    subscription_id: int,
    now: datetime,
    usage: UsageBatch | None = None,
    sheets: PriceSheets = NO_SHEETS,
    skip_locked: bool = False,
) -> tuple[bool, Invoice | None]:
    """One boundary of one subscription in its own transaction. ``(processed, invoice)``.

    ``processed`` is False when nothing was due (ended, caught up, or advanced by a concurrent run).
    ``usage``/``sheets``: what a run read beforehand for a batch (``run.batch_prefetch``).
    ``skip_locked``: raise :class:`CustomerBusy` instead of waiting when the customer is locked (a parallel
    run billing it, or any other write on the customer); the caller comes back to it later.
    """
    with transaction.atomic(durable=True):
        # Lock order: the customer first (one query through the subscription), then the subscription.
        locked = boundary_lock(subscription_id=subscription_id, skip_locked=skip_locked, usage=usage, sheets=sheets)
        if locked is None:
            if skip_locked:
                raise CustomerBusy(subscription_id)
            return False, None
        subscription, context = locked
        if subscription.status != Subscription.Status.ACTIVE or subscription.current_period_end > now:
            return False, None
        return True, subscription_boundary_bill_locked(subscription=subscription, now=now, context=context)


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
