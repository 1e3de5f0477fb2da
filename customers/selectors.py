"""Customer and subscription reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from catalog.models import PlanVersion
from catalog.selectors import plan_version_in_effect
from core.errors import NotFound

from . import periods
from .models import Customer, Subscription, TaxRate


def subscription_version_for(*, subscription: Subscription, period_start: datetime) -> PlanVersion | None:
    """The version a subscription bills with in the period starting at ``period_start``.

    Its pinned version (grandfathered), else the plan's published version in effect at that period's start.
    """
    if subscription.pinned_version_id:
        return subscription.pinned_version
    return plan_version_in_effect(plan=subscription.plan, at=period_start)


def customer_list() -> QuerySet[Customer]:
    return Customer.objects.prefetch_related("tax_rates").order_by("external_id")


def customer_get(*, external_id: str) -> Customer:
    """The customer with this external id, or NotFound (404)."""
    customer = customer_list().filter(external_id=external_id).first()
    if customer is None:
        raise NotFound(f"No customer with external id '{external_id}'.")
    return customer


def tax_rate_list() -> QuerySet[TaxRate]:
    return TaxRate.objects.order_by("code")


def subscription_list(*, customer: Customer | None = None) -> QuerySet[Subscription]:
    """Subscriptions, newest first, optionally of one customer."""
    qs = Subscription.objects.select_related(
        "customer", "plan", "plan_version", "pinned_version", "scheduled_plan", "next_subscription"
    )
    if customer is not None:
        qs = qs.filter(customer=customer)
    return qs.order_by("-created_at", "-id")


def subscription_get(*, subscription_id: str | int) -> Subscription:
    """The subscription with this id (the API's string id), or NotFound (404)."""
    try:
        pk = int(subscription_id)
    except (TypeError, ValueError):
        raise NotFound(f"No subscription with id '{subscription_id}'.") from None
    subscription = subscription_list().filter(pk=pk).first()
    if subscription is None:
        raise NotFound(f"No subscription with id '{subscription_id}'.")
    return subscription


@dataclass(frozen=True)
class SubscriptionPeriod:
    """One billing period of a subscription, as its admin page lists it.

    ``end`` is the schedule's end of the period; ``ended_at`` is set on the last period when the subscription
    was ended inside it (cancel now). ``plan_version`` is the version that period bills with by the rules
    (pinned, else in effect at its start).
    """

    start: datetime
    end: datetime
    plan_version: PlanVersion | None
    is_current: bool
    ended_at: datetime | None = None

    @property
    def days(self) -> int:
        return periods.Period(self.start, self.end).days


def subscription_periods(*, subscription: Subscription, until: datetime) -> list[SubscriptionPeriod]:
    """The subscription's past periods and its current one, oldest first.

    Rule: the list runs from the first period up to and including the period stored on the row as current
    (later periods have not started for billing until the period boundary advances the row), and leaves out
    periods starting at or after ``until``. An ended subscription's last period is the one it ended in.
    The plan's published versions are read in one query (none when the subscription is pinned).
    """
    interval = subscription.plan.interval
    last_end = subscription.current_period_end
    end = min(until, last_end)
    # A plan change's successor counts its schedule from the old anchor but begins when it replaced the old one.
    begin = subscription.start_at
    if subscription.previous_subscription_id is not None:
        begin = max(begin, subscription.previous_subscription.ended_at or subscription.current_period_start)
    schedule = periods.periods_between(
        subscription.billing,
        subscription.start_at,
        interval,
        begin,
        end,
        timezone=subscription.customer.timezone or "UTC",
    )
    if (
        schedule
        and subscription.current_period_start not in {p.start for p in schedule}
        and until > subscription.current_period_start
    ):
        # The customer's timezone changed: the periods served are those of the zone then, the row's current one
        # (or the transition period) stored on it; show the stored current period as it is.
        schedule = [p for p in schedule if p.end <= subscription.current_period_start]
        schedule.append(periods.Period(subscription.current_period_start, subscription.current_period_end))
    ended = subscription.status == Subscription.Status.ENDED
    current_start = subscription.current_period_start
    pinned = subscription.pinned_version if subscription.pinned_version_id else None
    versions = (
        []
        if pinned
        else list(
            PlanVersion.objects.filter(plan_id=subscription.plan_id, status=PlanVersion.Status.PUBLISHED).order_by(
                "-effective_from", "-number"
            )
        )
    )

    def version_at(at: datetime) -> PlanVersion | None:
        return pinned or next((v for v in versions if v.effective_from <= at), None)

    rows: list[SubscriptionPeriod] = []
    for period in schedule:
        is_row_period = period.start <= current_start < period.end
        rows.append(
            SubscriptionPeriod(
                start=max(period.start, begin),
                end=period.end,
                plan_version=subscription.plan_version if is_row_period else version_at(period.start),
                is_current=is_row_period and not ended,
                ended_at=subscription.ended_at
                if (ended and is_row_period and subscription.ended_at and subscription.ended_at < period.end)
                else None,
            )
        )
    return rows
