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

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Exists, JSONField, OuterRef, Q
from django.db.models.expressions import RawSQL

from catalog.models import Entitlement, Feature, Price
from metering.models import Event, Meter
from metering.selectors import (
    MeterReadState,
    UsageRead,
    meter_read_state_from_json,
    meter_read_state_sql,
    usage_reads,
)

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


# A subscription's entitlements with their features, meters, the meters' filters and rollup watermarks, as one
# jsonb column of the subscriptions' query: an entitlement check is this query plus its usage statement.
# Decimals travel as text (never a JSON float).
_ENTITLEMENTS_SQL = f"""
SELECT COALESCE(jsonb_agg(jsonb_build_array(
    en.id, en.enabled, en."limit"::text, en.reset, en.soft, en.value,
    f.id, f.key, f.name, f.type, f.unit_name,
    CASE WHEN m.id IS NOT NULL THEN jsonb_build_array(
        m.id, m.key, m.name, m.event_name, m.aggregation, m.field, m.multiplier::text, m.allow_negative,
        {meter_read_state_sql("m.id")}) END
) ORDER BY f.key), '[]'::jsonb)
FROM catalog_entitlement en
JOIN catalog_feature f ON f.id = en.feature_id
LEFT JOIN metering_meter m ON m.id = f.meter_id
WHERE en.plan_version_id = s.plan_version_id
"""

# The active subscriptions, first started first, each with its entitlements (a plain statement: compiling the
# ORM's version of it cost more than running it).
_SUBSCRIPTIONS_SQL = f"""
SELECT s.*, ({_ENTITLEMENTS_SQL}) AS entitlement_rows
FROM customers_subscription s
WHERE s.customer_id = %s AND s.status = %s
ORDER BY s.start_at, s.id
"""


def _meter_from_row(row: list) -> tuple[Meter, MeterReadState]:
    meter_id, key, name, event_name, aggregation, field, multiplier, allow_negative, state = row
    meter = Meter(
        id=meter_id,
        key=key,
        name=name,
        event_name=event_name,
        aggregation=aggregation,
        field=field,
        multiplier=None if multiplier is None else Decimal(multiplier),
        allow_negative=allow_negative,
    )
    meter._state.adding = False
    return meter, meter_read_state_from_json(state)


def _entitlement_from_row(row: list, sub: Subscription) -> tuple[Entitlement, MeterReadState | None]:
    ent_id, enabled, limit, reset, soft, value, feature_id, key, name, type_, unit_name, meter_row = row
    meter, state = _meter_from_row(meter_row) if meter_row is not None else (None, None)
    feature = Feature(id=feature_id, key=key, name=name, type=type_, unit_name=unit_name, meter=meter)
    ent = Entitlement(
        id=ent_id,
        plan_version_id=sub.plan_version_id,
        feature=feature,
        enabled=enabled,
        limit=None if limit is None else Decimal(limit),
        reset=reset,
        soft=soft,
        value=value,
    )
    feature._state.adding = ent._state.adding = False
    return ent, state


def _entitlements_by_feature(
    customer: Customer,
) -> dict[str, tuple[Entitlement, Subscription, MeterReadState | None]]:
    """The winning entitlement per feature key, from ONE query: the active subscriptions (ordered by start, so
    ties keep the first) with their versions' entitlements, features, meters and the meters' read state."""
    subs = Subscription.objects.raw(_SUBSCRIPTIONS_SQL, [customer.pk, Subscription.Status.ACTIVE])
    best: dict[str, tuple[Entitlement, Subscription, MeterReadState | None]] = {}
    for sub in subs:
        rows = sub.entitlement_rows
        for row in json.loads(rows) if isinstance(rows, str | bytes) else rows:
            ent, state = _entitlement_from_row(row, sub)
            key = ent.feature.key
            if key not in best or _generosity(ent) > _generosity(best[key][0]):
                best[key] = (ent, sub, state)
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


def _metered(ent: Entitlement) -> bool:
    return ent.feature.type == Feature.Type.METERED and ent.feature.meter is not None


def _usage_read(ent: Entitlement, sub: Subscription, customer: Customer, now: datetime) -> UsageRead:
    start, end = _window(ent, sub, now, customer.timezone)
    return UsageRead(meter=ent.feature.meter, start=start or sub.start_at, end=end)


def _state(
    ent: Entitlement, sub: Subscription, customer: Customer, now: datetime, usage: Decimal | None = None
) -> EntitlementState:
    """The entitlement's state; ``usage``: its meter's value over its window (metered features)."""
    feature = ent.feature
    if not _metered(ent):
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
    usage = max(usage if usage is not None else Decimal(0), Decimal(0))
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


def _states(
    chosen: list[tuple[Entitlement, Subscription, MeterReadState | None]], customer: Customer, now: datetime
) -> list[EntitlementState]:
    """The states of these entitlements; the usage of every metered one (each over its own window) in ONE
    statement (``metering.selectors.usage_reads``)."""
    metered = [(ent, sub, state) for ent, sub, state in chosen if _metered(ent)]
    values = usage_reads(
        reads=[_usage_read(ent, sub, customer, now) for ent, sub, _ in metered],
        customer_external_ids=[customer.external_id],
        states={ent.feature.meter.id: state for ent, _, state in metered},
    )
    usage = {
        id(ent): value.get(customer.external_id, Decimal(0)) for (ent, _, _), value in zip(metered, values, strict=True)
    }
    return [_state(ent, sub, customer, now, usage.get(id(ent))) for ent, sub, _ in chosen]


def entitlement_list(*, customer: Customer, now: datetime) -> list[EntitlementState]:
    """Every feature the customer's active subscriptions entitle, by feature key (two queries: the
    entitlements, then the usage of the metered ones)."""
    best = _entitlements_by_feature(customer)
    return _states([best[key] for key in sorted(best)], customer, now)


def entitlement_check(*, customer: Customer, feature_key: str, now: datetime) -> EntitlementState | None:
    """One feature's state, or None when no active subscription entitles it (two queries for a metered one)."""
    best = _entitlements_by_feature(customer)
    if feature_key not in best:
        return None
    [state] = _states([best[feature_key]], customer, now)
    return state


def usage_default_window(*, customer: Customer, now: datetime) -> tuple[datetime, datetime]:
    subs = active_subscriptions(customer=customer)
    if subs:
        return min(s.current_period_start for s in subs), max(s.current_period_end for s in subs)
    return periods.reset_window("month", now, None, timezone=customer.timezone)  # type: ignore[return-value]


def customer_usage(*, customer: Customer, start: datetime, end: datetime) -> list[tuple[Meter, Decimal]]:
    """``[(meter, value)]`` by meter key: meters with events in the window plus those priced or entitled in
    the customer's current plan versions (value 0 when none). Two queries: the meters (with their read state),
    then the usage of all of them in one statement.

    Filters are ignored in choosing the meters: a meter is listed when its event stream has events (its value
    may be 0)."""
    versions = Subscription.objects.filter(customer=customer, status=Subscription.Status.ACTIVE).values(
        "plan_version_id"
    )
    with_events = Event.objects.filter(
        customer_external_id=customer.external_id,
        event_name=OuterRef("event_name"),
        timestamp__gte=start,
        timestamp__lt=end,
    )
    priced = Price.objects.filter(plan_version_id__in=versions, meter_id=OuterRef("pk"))
    entitled = Entitlement.objects.filter(plan_version_id__in=versions, feature__meter_id=OuterRef("pk"))
    meters = list(
        Meter.objects.filter(Q(Exists(with_events)) | Q(Exists(priced)) | Q(Exists(entitled)))
        .annotate(read_state=RawSQL(meter_read_state_sql('"metering_meter"."id"'), [], output_field=JSONField()))
        .order_by("key")
    )
    values = usage_reads(
        reads=[UsageRead(meter=m, start=start, end=end) for m in meters],
        customer_external_ids=[customer.external_id],
        states={m.id: meter_read_state_from_json(m.read_state) for m in meters},
    )
    return [(m, value.get(customer.external_id, Decimal(0))) for m, value in zip(meters, values, strict=True)]
