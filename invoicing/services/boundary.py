"""The period boundary, orchestrated in one place (DESIGN.md): invoices, plan credits, rollover, next period.

Entry points are durable transactions; one subscription's boundary runs in one transaction.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from catalog.models import Plan, PlanVersion
from customers.models import Customer, Subscription
from customers.services import subscription_create


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
    """Create a subscription and do its first period's start work at once (plan credits, in-advance invoice)."""
    subscription = subscription_create(
        customer=customer, plan=plan, start_at=start_at, billing=billing, pinned_version=pinned_version
    )
    # TODO(invoicing): first period's start work: plan credits, the in-advance invoice (prorated when partial),
    # then catch up every boundary between start_at and now (start may be in the past).
    return subscription


@transaction.atomic(durable=True)
def subscription_cancel(*, subscription: Subscription, at: str, now: datetime) -> Subscription:
    """Cancel at ``period_end`` (stays active until its period ends) or ``now`` (ends at once).

    Canceling an ended subscription is a Conflict (409). Ending now bills what the ended part owes.
    """
    from customers.services import subscription_cancel as cancel_row

    subscription = cancel_row(subscription=subscription, at=at, now=now)
    # TODO(invoicing): when ending now, invoice the part of the period that ran (usage in arrears) and close credits.
    return subscription
