"""Customer and subscription reads."""

from __future__ import annotations

from datetime import datetime

from catalog.models import PlanVersion
from catalog.selectors import plan_version_in_effect

from .models import Subscription


def subscription_version_for(*, subscription: Subscription, period_start: datetime) -> PlanVersion | None:
    """The version a subscription bills with in the period starting at ``period_start``.

    Its pinned version (grandfathered), else the plan's published version in effect at that period's start.
    """
    if subscription.pinned_version_id:
        return subscription.pinned_version
    return plan_version_in_effect(plan=subscription.plan, at=period_start)
