"""Usage and spend alerts: create, evaluate (billing runs and a beat task), trigger once per level per period.

Rules chosen where the design is silent (docs/webhooks.md, "Alerts"):

* **The current period** of a customer is that of its active subscription ending first (the period the upcoming
  invoice closes first); a customer with no active subscription has nothing to evaluate.
* ``usage`` is the meter's value over ``[period start, min(period end, now))`` (the meter's own aggregation,
  read by ``metering.selectors.usage_for_customers``: the hourly rollup plus the open hour); ``spend`` is the
  upcoming invoice's subtotal (before tax and credits), as ``GET /customers/{id}/upcoming_invoice`` shows it.
* Each level (``levels.levels_reached``) triggers once per period -- the unique constraint
  ``alerttrigger_once_per_period_level`` decides, not a pre-check -- so re-running an evaluation adds nothing,
  and a value crossing several levels at once triggers each of them.
* Cheap at scale: only customers that have alerts are read, usage with one query per meter and period start.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import connection, transaction

from core.errors import ValidationFailed
from core.outbox import record_event
from customers.models import Customer, Subscription
from invoicing.selectors import upcoming_invoice_preview
from metering.models import Meter
from metering.selectors import usage_for_customers

from .levels import levels_reached
from .models import Alert, AlertTrigger

MAX_THRESHOLDS = 20


def plain(value: Decimal) -> str:
    """A decimal as its shortest exact string (``1000.000000000000`` -> ``"1000"``)."""
    value = Decimal(value).normalize()
    return format(value.quantize(Decimal(1)) if value == value.to_integral() else value, "f")


def _thresholds_check(thresholds: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in thresholds:
        value = item["value"]
        if isinstance(value, str) and value.isascii():  # a stored threshold ("1000"), checked again
            value = Decimal(value) if value.replace(".", "", 1).isdigit() else None
        if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
            raise ValidationFailed("Each threshold value must be a positive number.", field="thresholds")
        out.append({"value": plain(value), "recurring": bool(item.get("recurring", False))})
    if not out:
        raise ValidationFailed("At least one threshold is required.", field="thresholds")
    if len(out) > MAX_THRESHOLDS:
        raise ValidationFailed(f"At most {MAX_THRESHOLDS} thresholds.", field="thresholds")
    if sum(t["recurring"] for t in out) > 1:
        raise ValidationFailed("At most one threshold can be recurring.", field="thresholds")
    values = [t["value"] for t in out if not t["recurring"]]
    if len(set(values)) != len(values):
        raise ValidationFailed("Threshold values must differ.", field="thresholds")
    return sorted(out, key=lambda t: (t["recurring"], Decimal(t["value"])))


@transaction.atomic(durable=True)
def alert_create(
    *, customer: Customer, name: str, kind: str, thresholds: Iterable[dict[str, Any]], meter: Meter | None = None
) -> Alert:
    """Create an alert; the rules of :func:`alert_create_in_transaction`."""
    return alert_create_in_transaction(customer=customer, name=name, kind=kind, thresholds=thresholds, meter=meter)


@transaction.atomic(savepoint=False)
def alert_create_in_transaction(
    *, customer: Customer, name: str, kind: str, thresholds: Iterable[dict[str, Any]], meter: Meter | None = None
) -> Alert:
    """Create an alert in the caller's transaction (the admin's), checked by :func:`alert_check`."""
    return Alert.objects.create(
        customer=customer, name=name, kind=kind, meter=meter, thresholds=alert_check(kind, meter, thresholds)
    )


def alert_check(kind: str, meter: Meter | None, thresholds: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The thresholds as stored, or ValidationFailed (400) naming the field: ``meter`` required for ``usage``
    and refused for ``spend``; thresholds positive, distinct, at most one recurring."""
    if kind not in Alert.Kind.values:
        raise ValidationFailed(f"Unknown kind '{kind}'.", field="kind")
    if kind == Alert.Kind.USAGE and meter is None:
        raise ValidationFailed("A usage alert watches a meter: give its key.", field="meter")
    if kind == Alert.Kind.SPEND and meter is not None:
        raise ValidationFailed("A spend alert watches the upcoming invoice, not a meter.", field="meter")
    return _thresholds_check(thresholds)


def trigger_data(trigger: AlertTrigger) -> dict[str, Any]:
    """The ``alert.triggered`` event's ``data``: the trigger as the API lists it, with its alert."""
    alert = trigger.alert
    return {
        "alert": {
            "id": str(alert.pk),
            "customer": alert.customer.external_id,
            "name": alert.name,
            "kind": alert.kind,
            "meter": alert.meter.key if alert.meter_id else None,
            "thresholds": alert.thresholds,
        },
        "threshold": plain(trigger.threshold),
        "value": plain(trigger.value),
        "period_start": trigger.period_start.isoformat().replace("+00:00", "Z"),
        "triggered_at": trigger.triggered_at.isoformat().replace("+00:00", "Z"),
    }


@dataclass
class AlertSummary:
    alerts: int = 0
    triggers: int = 0
    failures: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"alerts={self.alerts} triggers={self.triggers} failures={len(self.failures)}"


def alert_triggers_record(*, alert: Alert, value: Decimal, period_start: datetime, now: datetime) -> list[AlertTrigger]:
    """The new triggers of ``alert`` for ``value`` measured in the period starting ``period_start``.

    One transaction: the alert row is locked, the levels already triggered this period are left out, the new
    ones inserted (the unique constraint guards a concurrent evaluation) and each sent as ``alert.triggered``.
    """
    if not levels_reached(value, fixed=alert.fixed_levels, recurring=alert.recurring_level):
        return []  # below every level: nothing to lock or read
    with transaction.atomic():
        locked = Alert.objects.select_for_update(of=("self",)).select_related("customer", "meter").get(pk=alert.pk)
        done = frozenset(
            AlertTrigger.objects.filter(alert=locked, period_start=period_start).values_list("threshold", flat=True)
        )
        levels = levels_reached(value, fixed=locked.fixed_levels, recurring=locked.recurring_level, exclude=done)
        if not levels:
            return []
        created = AlertTrigger.objects.bulk_create(
            [
                AlertTrigger(alert=locked, threshold=level, value=value, period_start=period_start, triggered_at=now)
                for level in levels
            ]
        )
        for trigger in created:
            trigger.alert = locked
            record_event("alert.triggered", trigger)
        return created


def _current_periods(customer_ids: Iterable[int], now: datetime) -> dict[int, tuple[datetime, datetime]]:
    """``{customer id: (start, end)}`` of each customer's active subscription ending first (started by ``now``)."""
    periods: dict[int, tuple[datetime, datetime]] = {}
    rows = (
        Subscription.objects.filter(
            customer_id__in=list(customer_ids), status=Subscription.Status.ACTIVE, current_period_start__lte=now
        )
        .order_by("customer_id", "current_period_end", "id")
        .values_list("customer_id", "current_period_start", "current_period_end")
    )
    for customer_id, start, end in rows:
        periods.setdefault(customer_id, (start, end))
    return periods


def alerts_evaluate(*, now: datetime, customer_external_id: str | None = None) -> AlertSummary:
    """Evaluate every alert (of one customer, when given) as of ``now``. A failing alert is recorded, not raised."""
    summary = AlertSummary()
    query = Alert.objects.select_related("customer", "meter").order_by("id")
    if customer_external_id is not None:
        query = query.filter(customer__external_id=customer_external_id)
    alerts = list(query)
    if not alerts:
        return summary
    periods = _current_periods({a.customer_id for a in alerts}, now)
    # Usage: one read per (meter, period window) for all the customers that share it.
    groups: dict[tuple[int, datetime, datetime], set[str]] = defaultdict(set)
    meters = {}
    for alert in alerts:
        if alert.kind == Alert.Kind.USAGE and alert.customer_id in periods:
            start, end = periods[alert.customer_id]
            groups[(alert.meter_id, start, min(end, now))].add(alert.customer.external_id)
            meters[alert.meter_id] = alert.meter
    usage: dict[tuple[int, datetime, str], Decimal] = {}
    for (meter_id, start, end), externals in groups.items():
        values = usage_for_customers(meters=[meters[meter_id]], customer_external_ids=externals, start=start, end=end)
        for external in externals:
            usage[(meter_id, start, external)] = values.get((external, meter_id), Decimal(0))
    spend: dict[int, Decimal] = {}
    for alert in alerts:
        if alert.customer_id not in periods:
            continue
        summary.alerts += 1
        start, _end = periods[alert.customer_id]
        try:
            if alert.kind == Alert.Kind.USAGE:
                value = usage[(alert.meter_id, start, alert.customer.external_id)]
            else:
                if alert.customer_id not in spend:
                    spend[alert.customer_id] = upcoming_invoice_preview(customer=alert.customer, now=now).subtotal
                value = spend[alert.customer_id]
            summary.triggers += len(alert_triggers_record(alert=alert, value=value, period_start=start, now=now))
        except Exception as exc:  # noqa: BLE001 -- one alert's failure must not stop the others
            if connection.in_atomic_block:
                raise
            summary.failures.append(f"alert {alert.pk}: {type(exc).__name__}: {exc}")
    return summary
