"""Customer and subscription writes. Helpers here run inside the caller's transaction.

The work done when a period starts or ends (invoices, plan credits, rollover) is orchestrated at the top,
in ``invoicing.services.boundary``; this module only keeps the subscription row right.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from billing_project.errors import ValidationFailed
from catalog.models import Plan, PlanVersion

from . import periods
from .models import Customer, Subscription
from .selectors import subscription_version_for


@transaction.atomic(savepoint=False)
def subscription_create(
    *,
    customer: Customer,
    plan: Plan,
    start_at: datetime,
    billing: str = Subscription.Billing.CALENDAR,
    pinned_version: PlanVersion | None = None,
) -> Subscription:
    """Create an active subscription with its first period. Call inside a transaction.

    Raises ValidationFailed naming the field: a currency that does not match the plan, a pinned version of
    another plan or not published, a plan with no published version in effect at the start.
    """
    if customer.currency != plan.currency:
        raise ValidationFailed(
            f"The plan bills in {plan.currency}; the customer pays in {customer.currency}.", field="plan"
        )
    if billing not in Subscription.Billing.values:
        raise ValidationFailed(f"Unknown billing '{billing}'.", field="billing")
    if pinned_version is not None and (pinned_version.plan_id != plan.id or not pinned_version.is_published):
        raise ValidationFailed("The pinned version must be a published version of this plan.", field="pinned_version")
    first = periods.first_period(billing, start_at, plan.interval)
    subscription = Subscription(
        customer=customer, plan=plan, pinned_version=pinned_version, billing=billing, start_at=start_at,
        current_period_start=first.start, current_period_end=first.end,
    )
    version = subscription_version_for(subscription=subscription, period_start=first.start)
    if version is None:
        raise ValidationFailed("The plan has no published version in effect at the start.", field="plan")
    subscription.plan_version = version
    subscription.save()
    return subscription
