"""Reads for product teams: a customer's usage per meter, and "may this customer use feature X now?".

Rules where the design is silent (docs/metering.md):

* Entitlements come from the customer's ACTIVE subscriptions, each through ``subscription.plan_version``
  (the version billing its current period). No active subscription: no entitlements.
* Two subscriptions entitling the same feature: the most generous one wins: enabled before disabled, then
  unlimited before limited, then the higher limit, then soft before hard; ties go to the subscription that
  started first. Its reset window and usage are the ones reported.
* Metered windows: ``billing_period`` is the subscription's current period (after a plan change inside a
  period, the window the old subscription counted in goes on: ``billing_window_start``);
  ``day``/``week``/``month``/``year`` are the UTC calendar window containing now; ``never`` runs from the
  subscription's start with no end.
* ``remaining = max(limit - usage, 0)``; ``allowed = enabled and (unlimited or soft or usage < limit)``.
* Usage below zero (a meter with ``allow_negative`` whose corrections outweigh its usage) counts as 0 here:
  a correction can give back what was used, never lift the limit (``remaining`` is at most ``limit``).
* Usage window by default: from the earliest ``current_period_start`` to the latest ``current_period_end``
  of the active subscriptions; with none, the current UTC calendar month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from catalog.models import Entitlement, Feature, Price
from metering.models import Meter
from metering.selectors import meter_ids_with_events, meter_usage, usage_for_customers

from . import periods
from .models import Customer, Subscription
from .schedule import subscription_prorate


@dataclass(frozen=True)
class EntitlementState:
    feature: str
    type: str
    enabled: bool
    value: str | None
    limit: Decimal | None
    usage: Decimal | None
    remaining: Decimal | None
    soft: bool
    allowed: bool
    window_start: datetime | None
    window_end: datetime | None


def active_subscriptions(*, customer: Customer) -> list[Subscription]:
    return list(
        Subscription.objects.filter(customer=customer, status=Subscription.Status.ACTIVE)
        .select_related("plan", "plan_version")
        .order_by("start_at", "id")
    )


def _generosity(ent: Entitlement) -> tuple:
    return (ent.enabled, ent.limit is None, ent.limit or Decimal(0), ent.soft)


def _entitlements_by_feature(subs: list[Subscription]) -> dict[str, tuple[Entitlement, Subscription]]:
    """The winning entitlement per feature key (subscriptions come ordered by start, so ties keep the first)."""
    rows = list(
        Entitlement.objects.filter(plan_version_id__in={s.plan_version_id for s in subs})
        .select_related("feature", "feature__meter")
        .prefetch_related("feature__meter__filters")
    )
    best: dict[str, tuple[Entitlement, Subscription]] = {}
    for sub in subs:
        for ent in rows:
            if ent.plan_version_id != sub.plan_version_id:
                continue
            key = ent.feature.key
            if key not in best or _generosity(ent) > _generosity(best[key][0]):
                best[key] = (ent, sub)
    return best


def _window(
    ent: Entitlement, sub: Subscription, now: datetime, timezone: str | None = None
) -> tuple[datetime | None, datetime | None]:
    if ent.reset == Entitlement.Reset.BILLING_PERIOD:
        # The subscription row always holds the period being served (even if a billing run is late).
        return billing_window_start(sub), sub.current_period_end
    # Daily, weekly, monthly and yearly windows start at the customer's local midnight.
    return periods.reset_window(ent.reset, now, None, anchor=sub.start_at, timezone=timezone)


def billing_window_start(sub: Subscription) -> datetime:
    """Where a ``billing_period`` usage window starts: the current period's start, except after a plan change
    made inside a period (DESIGN.md: a change is not a new billing period for these resets unless the new
    period starts at the change): then the window the replaced subscription was counting in goes on."""
    start = sub.current_period_start
    previous = sub.previous_subscription if sub.previous_subscription_id else None
    if previous is None or previous.ended_at != start or previous.current_period_end <= start:
        return start  # no change, or a change at a period's end: a new period
    whole = subscription_prorate(sub, periods.Period(start, sub.current_period_end), Decimal(0))
    return billing_window_start(previous) if whole.partial else start


def _state(ent: Entitlement, sub: Subscription, customer: Customer, now: datetime) -> EntitlementState:
    feature = ent.feature
    if feature.type != Feature.Type.METERED or feature.meter is None:
        return EntitlementState(
            feature=feature.key,
            type=feature.type,
            enabled=ent.enabled,
            value=(ent.value or None) if feature.type == Feature.Type.STATIC else None,
            limit=None,
            usage=None,
            remaining=None,
            soft=ent.soft,
            allowed=ent.enabled,
            window_start=None,
            window_end=None,
        )
    start, end = _window(ent, sub, now, customer.timezone)
    usage = max(
        meter_usage(
            meter=feature.meter, customer_external_id=customer.external_id, start=start or sub.start_at, end=end
        ),
        Decimal(0),
    )
    limit = ent.limit
    remaining = None if limit is None else max(limit - usage, Decimal(0))
    allowed = ent.enabled and (limit is None or ent.soft or usage < limit)
    return EntitlementState(
        feature=feature.key,
        type=feature.type,
        enabled=ent.enabled,
        value=None,
        limit=limit,
        usage=usage,
        remaining=remaining,
        soft=ent.soft,
        allowed=allowed,
        window_start=start,
        window_end=end,
    )


def entitlement_list(*, customer: Customer, now: datetime) -> list[EntitlementState]:
    """Every feature the customer's active subscriptions entitle, by feature key."""
    best = _entitlements_by_feature(active_subscriptions(customer=customer))
    return [_state(ent, sub, customer, now) for _, (ent, sub) in sorted(best.items())]


def entitlement_check(*, customer: Customer, feature_key: str, now: datetime) -> EntitlementState | None:
    """One feature's state, or None when no active subscription entitles it."""
    best = _entitlements_by_feature(active_subscriptions(customer=customer))
    if feature_key not in best:
        return None
    ent, sub = best[feature_key]
    return _state(ent, sub, customer, now)


def usage_default_window(*, customer: Customer, now: datetime) -> tuple[datetime, datetime]:
    subs = active_subscriptions(customer=customer)
    if subs:
        return min(s.current_period_start for s in subs), max(s.current_period_end for s in subs)
    return periods.reset_window("month", now, None, timezone=customer.timezone)  # type: ignore[return-value]


def customer_usage(*, customer: Customer, start: datetime, end: datetime) -> list[tuple[Meter, Decimal]]:
    """``[(meter, value)]`` by meter key: meters with events in the window plus those priced or entitled in
    the customer's current plan versions (value 0 when none)."""
    versions = [s.plan_version_id for s in active_subscriptions(customer=customer)]
    ids = set(meter_ids_with_events(customer_external_id=customer.external_id, start=start, end=end))
    ids |= set(
        Price.objects.filter(plan_version_id__in=versions, meter__isnull=False).values_list("meter_id", flat=True)
    )
    ids |= set(
        Entitlement.objects.filter(plan_version_id__in=versions, feature__meter__isnull=False).values_list(
            "feature__meter_id", flat=True
        )
    )
    meters = list(Meter.objects.filter(id__in=ids).prefetch_related("filters").order_by("key"))
    values = usage_for_customers(meters=meters, customer_external_ids=[customer.external_id], start=start, end=end)
    return [(m, values.get((customer.external_id, m.id), Decimal(0))) for m in meters]
