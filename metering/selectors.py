"""Usage reads: aggregation runs in PostgreSQL, never by loading events into Python."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from django.db import connection

from .models import Meter


def _numeric(expr: str) -> str:
    # A property counts only when it is numeric: a JSON number or a decimal string.
    return (
        f"CASE WHEN jsonb_typeof({expr}) = 'number' THEN ({expr})::text::numeric "
        f"WHEN jsonb_typeof({expr}) = 'string' AND ({expr} #>> '{{}}') ~ '^\\s*[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)\\s*$' "
        f"THEN ({expr} #>> '{{}}')::numeric END"
    )


def _meter_sql(meter: Meter) -> tuple[str, str, list]:
    """(aggregate expression over ``e.v`` = the meter's property, WHERE clause, params) for one meter."""
    agg = meter.aggregation
    num = _numeric("e.v")
    if agg == Meter.Aggregation.COUNT:
        value = "COUNT(*)::numeric"
    elif agg == Meter.Aggregation.SUM:
        value = f"COALESCE(SUM({num}), 0)"
    elif agg == Meter.Aggregation.SUM_WITH_MULTIPLIER:
        value = f"COALESCE(SUM({num}), 0) * {Decimal(meter.multiplier or 1)}::numeric"
    elif agg == Meter.Aggregation.MAX:
        value = f"COALESCE(MAX({num}), 0)"
    elif agg == Meter.Aggregation.LATEST:
        value = f"COALESCE((ARRAY_AGG({num} ORDER BY e.timestamp DESC, e.id DESC) FILTER (WHERE {num} IS NOT NULL))[1], 0)"
    elif agg == Meter.Aggregation.COUNT_UNIQUE:
        value = "COUNT(DISTINCT e.v #>> '{}')::numeric"
    else:  # pragma: no cover - choices are validated at creation
        raise ValueError(f"unknown aggregation {agg}")
    where = ["e.event_name = %s"]
    params: list = [meter.event_name]
    for f in meter.filters.all():
        where.append("(e.properties ->> %s) = ANY(%s)")
        params += [f.property, list(f.values)]
    return value, " AND ".join(where), params


def meter_usage(*, meter: Meter, customer_external_id: str, start: datetime, end: datetime) -> Decimal:
    """The meter's value for one customer over the half-open window [start, end)."""
    result = usage_for_customers(meters=[meter], customer_external_ids=[customer_external_id], start=start, end=end)
    return result.get((customer_external_id, meter.id), Decimal(0))


def usage_for_customers(
    *, meters: Sequence[Meter], customer_external_ids: Iterable[str], start: datetime, end: datetime
) -> dict[tuple[str, int], Decimal]:
    """Usage of many customers at once: ``{(customer_external_id, meter_id): value}`` (one query per meter)."""
    ids = list(customer_external_ids)
    out: dict[tuple[str, int], Decimal] = {}
    if not ids:
        return out
    with connection.cursor() as cursor:
        for meter in meters:
            value, where, wparams = _meter_sql(meter)
            cursor.execute(
                f"SELECT e.customer_external_id, {value} FROM ("
                f"SELECT e.customer_external_id, e.id, e.timestamp, e.properties, e.properties -> %s AS v "
                f"FROM metering_event e WHERE e.customer_external_id = ANY(%s) AND e.timestamp >= %s "
                f"AND e.timestamp < %s AND {where}) e "
                f"WHERE e.v IS NOT NULL OR %s GROUP BY e.customer_external_id",
                [meter.field or "", ids, start, end, *wparams, meter.aggregation == Meter.Aggregation.COUNT],
            )
            for customer_id, val in cursor.fetchall():
                out[(customer_id, meter.id)] = Decimal(val) if val is not None else Decimal(0)
    return out
