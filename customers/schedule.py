"""A subscription's billing schedule in its customer's timezone (rows -> :mod:`customers.periods`).

Rules (DESIGN.md "Customers and subscriptions", docs/billing-rules.md "Timezones"):

* The schedule follows ``Customer.timezone``: calendar boundaries at the customer's local midnight, anniversary
  boundaries at the anchor's local wall time, proration by local dates. Periods stay UTC instants on the rows,
  so a billing run treats a boundary as due at its UTC instant.
* A timezone change applies from the next period: the period being served keeps the bounds stored on the
  subscription, and the next one starts where it ends (:func:`customers.periods.period_after`: one transition
  period up to the new zone's boundary when the end is not one of them).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from catalog.models import Plan

from . import periods
from .models import Customer, Subscription


def customer_timezone(customer: Customer) -> str:
    """The customer's IANA zone (``"UTC"`` when unset)."""
    return customer.timezone or "UTC"


def subscription_timezone(subscription: Subscription) -> str:
    return customer_timezone(subscription.customer)


def subscription_first_period(*, customer: Customer, plan: Plan, billing: str, start_at: datetime) -> periods.Period:
    """The first period of a subscription of ``customer`` to ``plan`` starting at ``start_at``."""
    return periods.first_period(billing, start_at, plan.interval, timezone=customer_timezone(customer))


def subscription_period_after(subscription: Subscription, end: datetime) -> periods.Period:
    """The period that starts at ``end`` (the end of a served period), in the customer's timezone now."""
    return periods.period_after(
        subscription.billing,
        subscription.start_at,
        subscription.plan.interval,
        end,
        timezone=subscription_timezone(subscription),
    )


def subscription_prorate(subscription: Subscription, part: periods.Period, amount: Decimal) -> periods.Proration:
    """:func:`customers.periods.prorate_period` of a fixed fee for ``part`` of the subscription's schedule."""
    return periods.prorate_period(
        subscription.billing,
        subscription.start_at,
        subscription.plan.interval,
        part,
        amount,
        timezone=subscription_timezone(subscription),
    )
