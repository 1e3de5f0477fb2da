"""The subscription lifecycle, in one place (DESIGN.md: invoicing owns start, change, trial end and cancel).

Every verb that moves a subscription through its life is here, as a durable entry point (API, admin, demo) with,
where a caller composes it, a ``*_locked`` variant for the caller's transaction. Each runs in one transaction
with the row change and what it bills and grants, so a subscription is never started, ended or changed without
its invoice and its plan credits:

* :func:`subscription_start`: the row and its first period's start work (plan credits, the in-advance invoice);
* :func:`subscription_cancel`: at the period's end (the boundary ends it) or now (the part period is billed);
* the period boundary, which bills a period's end and moves the subscription to its next period, is
  ``boundary.py`` beside this module (``subscription_bill_once``, called by billing runs);
* plan changes (at the period's end, or now) are ``changes.py`` and trial ends ``trials.py``, beside this module.

``customers.services`` keeps only the subscription row right (``subscription_row_create``,
``subscription_row_cancel``, ``subscription_row_advance_locked``); only this module and the boundary call those.
Each verb locks the customer first, then the subscription row (re-read ``FOR UPDATE``, its state checked again).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction

from catalog.models import Plan, PlanVersion
from core.outbox import record_event
from customers.models import Customer, Subscription
from customers.periods import Period
from customers.services import subscription_row_cancel, subscription_row_create

from ..models import Invoice
from . import credits as credits_seam
from .context import tax_rates_of
from .invoices import invoice_create_for_period, invoice_finalize_number, invoice_finalize_or_hold
from .lines import advance_lines, arrears_lines
from .period_close import period_close_terms_apply


def _lock_customer(customer_id: int) -> Customer:
    return Customer.objects.select_for_update().get(pk=customer_id)


def _lock_subscription(subscription_id: int) -> Subscription:
    return (
        Subscription.objects.select_for_update(of=("self",))
        .select_related("customer", "plan", "plan_version", "plan_version__plan", "pinned_version")
        .get(pk=subscription_id)
    )


@transaction.atomic(savepoint=False)
def subscription_start_locked(
    *,
    customer: Customer,
    plan: Plan,
    start_at: datetime,
    billing: str,
    pinned_version: PlanVersion | None,
    now: datetime,
    price_overrides: Any = None,
    trial_days: int | None = None,
) -> Subscription:
    """``subscription_start`` inside the caller's transaction: the first period's start work only.

    ``trial_days``: the free trial (default: the plan version's ``trial_days``; 0 = none). A subscription starting
    in its trial gets no start invoice: its first fees are billed at the trial's end (``trials.py``)."""
    customer = _lock_customer(customer.pk)
    subscription = subscription_row_create(
        customer=customer,
        plan=plan,
        start_at=start_at,
        billing=billing,
        pinned_version=pinned_version,
        price_overrides=price_overrides,
        trial_days=trial_days,
    )
    subscription = _lock_subscription(subscription.pk)
    record_event("subscription.started", subscription)
    first = Period(subscription.current_period_start, subscription.current_period_end)
    credits_seam.plan_credits_grant(subscription=subscription, period=first, now=now)
    if subscription.in_trial_at(first.start):
        return subscription
    lines = advance_lines(
        subscription=subscription, version=subscription.plan_version, period=first, currency=customer.currency
    )
    invoice = invoice_create_for_period(
        customer=subscription.customer,
        subscription=subscription,
        boundary_at=first.start,
        period=first,
        lines=lines,
        now=now,
        tax_rates=tax_rates_of(customer),
        reason=Invoice.Reason.START,
    )
    if invoice is not None and invoice_finalize_or_hold(invoice=invoice, now=now):
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
    price_overrides: Any = None,
    trial_days: int | None = None,
) -> Subscription:
    """Create a subscription and do its first period's start work at once (plan credits, in-advance invoice).

    ``price_overrides``: the subscription's negotiated prices (``catalog.overrides``), in force from the first period.

    The first period's in-advance fixed fees are prorated by whole days for a partial calendar period.
    Only the first period, the one containing ``start_at``, is started here, even when ``start_at`` is in the
    past (DESIGN.md): every later boundary is a billing run's work (``run_billing --now T``, or the beat task
    at its next tick), one boundary per period, so the subscription's ``current_period_*`` stay on the first
    period until a run advances them. Creating a subscription therefore does a bounded amount of work, and a
    suite stepping time with ``run_billing --now`` sees each boundary billed by the run that reaches it.
    """
    return subscription_start_locked(
        customer=customer,
        plan=plan,
        start_at=start_at,
        billing=billing,
        pinned_version=pinned_version,
        now=now,
        price_overrides=price_overrides,
        trial_days=trial_days,
    )


@transaction.atomic(durable=True)
def subscription_cancel(*, subscription: Subscription, at: str, now: datetime) -> Subscription:
    """Cancel at ``period_end`` (stays active until its period ends) or ``now`` (ends at once).

    Canceling an ended subscription is a Conflict (409). Ending now bills what the ended part owes: an
    invoice at the end instant with the part period's in-arrears lines (fixed fees in arrears prorated by
    whole days); fees paid in advance are not refunded here (a credit note does that).
    """
    _lock_customer(subscription.customer_id)
    locked = _lock_subscription(subscription.pk)
    part_start = locked.current_period_start
    version = locked.plan_version
    subscription = subscription_row_cancel(subscription=locked, at=at, now=now)
    if (
        subscription.status == Subscription.Status.ENDED
        and subscription.ended_at
        and subscription.ended_at > part_start
    ):
        part = Period(part_start, subscription.ended_at)
        lines = arrears_lines(
            subscription=subscription, version=version, period=part, currency=subscription.customer.currency
        )
        # The part period closes here: commitment true-up (prorated to its days) and progressive credit.
        lines = period_close_terms_apply(
            lines=lines,
            subscription=subscription,
            period=part,
            version=version,
            currency=subscription.customer.currency,
        )
        invoice = invoice_create_for_period(
            customer=subscription.customer,
            subscription=subscription,
            boundary_at=part.end,
            period=part,
            lines=lines,
            now=now,
            tax_rates=tax_rates_of(subscription.customer),
            reason=Invoice.Reason.CANCEL,
        )
        needs_number = invoice is not None and invoice_finalize_or_hold(invoice=invoice, now=now)
        credits_seam.plan_credits_close_period(subscription=subscription, period=part, ending=True, now=now)
        if needs_number:
            invoice_finalize_number(invoice=invoice, now=now)
    return subscription
