"""Usage reads: aggregation runs in PostgreSQL, never by loading events into Python.

A meter's value over ``[start, end)`` is assembled in one SQL statement from three disjoint parts
(docs/metering.md):

1. the rollup for the whole UTC hours inside the window, which holds every event with ``id <=`` the meter's
   watermark (``MeterRollupState.last_event_id``, read in the same statement): the daily rollup
   (``UsageRollupDay``) for the whole UTC days, the hourly one (``UsageRollup``) for the hours around them;
2. raw events with ``id <=`` the watermark in the partial hours at the window's edges;
3. raw events with ``id >`` the watermark anywhere in the window (arrived since the last rollup).

So the answer never depends on when the rollup last ran; only its speed does. ``count_unique`` cannot be
added up across hours and always reads raw events (index on customer, event name, timestamp).

Rules where the design is silent: a property counts for numeric aggregations only when it is a JSON number
or a decimal string in the property grammar (ASCII digits, at most 20 before the point and 12 after,
negative only for a meter with ``allow_negative``; ``core.numbers``), anything else counts as
missing; ``max`` and ``latest`` are 0 when no event
has the property; ``latest`` picks the event with the greatest timestamp, then the greatest id (arrival)
among events whose property is numeric; ``count_unique`` counts distinct values of the property compared as
text (the number ``1`` and the string ``"1"`` are one value).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db import connection

from core.numbers import property_pattern

from .aggregations import AGGREGATIONS
from .models import Event, Meter

FAR_FUTURE = datetime(9999, 12, 31, tzinfo=UTC)
HOUR = timedelta(hours=1)


def numeric_sql(expr: str) -> str:
    """SQL turning a jsonb value into ``numeric``, or NULL when it is not a number the meter counts.

    A JSON number or a string counts when its text (PostgreSQL's text of a number never has an exponent)
    matches the meter's property grammar, passed as the ``%(num_pattern)s`` parameter
    (:func:`numeric_params`): the same regular expression the ingestion check uses
    (``core.numbers.property_pattern``). Only matching text is ever cast, so the cast cannot fail
    and a row stored before the rule existed (or written around the API) counts as a missing property: it
    can never stop a usage read or the rollup.
    """
    text = f"({expr} #>> '{{}}')"
    return (
        f"(CASE WHEN jsonb_typeof({expr}) IN ('number', 'string') AND {text} ~ %(num_pattern)s "
        f"THEN {text}::numeric END)"
    )


def numeric_params(meter: Meter) -> dict[str, str]:
    """The parameters :func:`numeric_sql` needs: the property grammar, signed only for ``allow_negative``."""
    return {"num_pattern": property_pattern(signed=meter.allow_negative)}


def meter_filter_sql(
    meter: Meter, alias: str = "e", *, filters: Sequence[tuple[str, Sequence[str]]] | None = None
) -> tuple[str, dict]:
    """``event_name = ... AND <every filter holds>`` for one meter, with its named params ``w0``, ``w1``, ...

    ``filters``: the meter's ``(property, values)`` when already read (else ``meter.filters.all()`` is read)."""
    where = [f"{alias}.event_name = %(w0)s"]
    params: dict = {"w0": meter.event_name}
    if filters is None:
        filters = [(f.property, f.values) for f in meter.filters.all()]
    for prop_value, values_value in filters:
        prop, values = f"w{len(params)}", f"w{len(params) + 1}"
        # ->> gives the text of a string or number value: property "model" in ["gpt-4o"] matches "gpt-4o".
        where.append(f"({alias}.properties ->> %({prop})s) = ANY(%({values})s::text[])")
        params[prop], params[values] = prop_value, list(values_value)
    return " AND ".join(where), params


def _hour_ceil(at: datetime) -> datetime:
    floor = at.replace(minute=0, second=0, microsecond=0)
    return floor if floor == at else floor + HOUR


def _hour_floor(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _day_floor(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def _day_ceil(at: datetime) -> datetime:
    floor = _day_floor(at)
    return floor if floor == at else floor + timedelta(days=1)


# The meter's watermark is read twice. In the statement itself (one snapshot with the rollup rows it goes
# with), so a refresh committing between two statements can never make a read count an event twice; and just
# before, as a literal ``%(wm)s`` (never above the one in the statement), so the planner sees how short the raw
# tail ``id > wm`` is and reads it through the primary key (id, timestamp) instead of every event of a heavy
# customer's window through the customer index.
WATERMARK_SQL = (
    "(SELECT COALESCE(MAX(s.last_event_id), 0) FROM metering_meterrollupstate s WHERE s.meter_id = %(meter_id)s)"
)


@dataclass(frozen=True)
class MeterReadState:
    """What a usage statement of a meter needs before it is written: the rollup watermark (a literal for the
    planner, see above) and the meter's filters as ``(property, values)``. Read in one query for every meter
    of a read (:func:`meter_read_states`), or with the rows that name the meter (:func:`meter_read_state_sql`),
    so a read costs one round trip for this plus one for the usage statement."""

    watermark: int
    filters: tuple[tuple[str, tuple[str, ...]], ...]


def meter_read_state_sql(meter_id_sql: str) -> str:
    """SQL of a ``jsonb`` value ``[watermark, [[property, [values]], ...]]`` for the meter whose id is the SQL
    expression ``meter_id_sql``: for a query that loads meters with other rows (an entitlement check), read
    back by :func:`meter_read_state_from_json`."""
    return (
        "jsonb_build_array("
        "(SELECT COALESCE(MAX(s.last_event_id), 0) FROM metering_meterrollupstate s"
        f" WHERE s.meter_id = {meter_id_sql}),"
        " COALESCE((SELECT jsonb_agg(jsonb_build_array(f.property, f.values) ORDER BY f.id)"
        f" FROM metering_meterfilter f WHERE f.meter_id = {meter_id_sql}), '[]'::jsonb))"
    )


def meter_read_state_from_json(value) -> MeterReadState:
    """The :class:`MeterReadState` of a value made by :func:`meter_read_state_sql` (text or decoded)."""
    watermark, filters = json.loads(value) if isinstance(value, str | bytes) else value
    return MeterReadState(watermark=int(watermark), filters=tuple((prop, tuple(values)) for prop, values in filters))


def meter_read_states(meters: Sequence[Meter]) -> dict[int, MeterReadState]:
    """``{meter_id: MeterReadState}`` for these meters in ONE query (filters read fresh, as ``meter.filters``
    would be without a prefetch: a long-lived meter object never keeps filters edited since)."""
    if not meters:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT m.id, {meter_read_state_sql('m.id')} FROM unnest(%s::bigint[]) AS m(id)",
            [sorted({m.id for m in meters})],
        )
        return {meter_id: meter_read_state_from_json(value) for meter_id, value in cursor.fetchall()}


RAW_PART = """
    SELECT r.c, COUNT(*) AS n, SUM(r.num) AS s, MAX(r.num) AS m, {latest}
    FROM (
        SELECT e.customer_external_id AS c, e.id, e.timestamp AS ts, {num} AS num, e.properties ? %(field)s AS has
        FROM metering_event e
        WHERE e.customer_external_id = ANY(%(ids)s) AND {where}
          AND e.timestamp >= %(start)s AND e.timestamp < %(end)s AND e.id > %(wm)s AND e.id > {wm}
        UNION ALL
        SELECT e.customer_external_id, e.id, e.timestamp, {num}, e.properties ? %(field)s
        FROM metering_event e
        WHERE e.customer_external_id = ANY(%(ids)s) AND {where} AND e.id <= {wm}
          AND ((e.timestamp >= %(start)s AND e.timestamp < %(hs)s) OR (e.timestamp >= %(he)s AND e.timestamp < %(end)s))
    ) r
    WHERE %(is_count)s OR r.has
    GROUP BY r.c
"""

# The latest event's timestamp, id and value, only for aggregations that read them (three sorted array
# aggregates: the costliest part of reading a raw tail of thousands of events).
RAW_LATEST = """
           (ARRAY_AGG(r.ts ORDER BY r.ts DESC, r.id DESC) FILTER (WHERE r.num IS NOT NULL))[1] AS lts,
           (ARRAY_AGG(r.id ORDER BY r.ts DESC, r.id DESC) FILTER (WHERE r.num IS NOT NULL))[1] AS lid,
           (ARRAY_AGG(r.num ORDER BY r.ts DESC, r.id DESC) FILTER (WHERE r.num IS NOT NULL))[1] AS lv"""
NO_LATEST = "NULL::timestamptz AS lts, NULL::bigint AS lid, NULL::numeric AS lv"
ROLLUP_LATEST = """
           (ARRAY_AGG(u.latest_at ORDER BY u.latest_at DESC, u.latest_id DESC)
              FILTER (WHERE u.latest_value IS NOT NULL))[1],
           (ARRAY_AGG(u.latest_id ORDER BY u.latest_at DESC, u.latest_id DESC)
              FILTER (WHERE u.latest_value IS NOT NULL))[1],
           (ARRAY_AGG(u.latest_value ORDER BY u.latest_at DESC, u.latest_id DESC)
              FILTER (WHERE u.latest_value IS NOT NULL))[1]"""

ROLLUP_PART = """
    SELECT u.customer_external_id, SUM(u.event_count), SUM(u.value_sum), MAX(u.value_max), {latest}
    FROM metering_usagerollup u
    WHERE u.meter_id = %(meter_id)s AND u.customer_external_id = ANY(%(ids)s)
      AND u.hour >= %({lo})s AND u.hour < %({hi})s
    GROUP BY u.customer_external_id
"""

# Whole UTC days inside the window, from the daily rollup (31 rows a month per customer instead of 744).
DAY_PART = """
    SELECT d.customer_external_id, SUM(d.event_count), SUM(d.value_sum), MAX(d.value_max), {latest}
    FROM metering_usagerollupday d
    WHERE d.meter_id = %(meter_id)s AND d.customer_external_id = ANY(%(ids)s) AND d.day >= %(ds)s AND d.day < %(de)s
    GROUP BY d.customer_external_id
"""


def _usage_query(
    meter: Meter, ids: list[str], start: datetime, end: datetime, state: MeterReadState
) -> tuple[str, dict]:
    agg = AGGREGATIONS[meter.aggregation]  # its SQL: metering/aggregations.py
    where, where_params = meter_filter_sql(meter, filters=state.filters)
    params = {
        "ids": ids,
        "start": start,
        "end": end,
        "field": meter.field or "",
        "is_count": agg.counts_every_event,
        "meter_id": meter.id,
        **where_params,
        **numeric_params(meter),
    }
    num = numeric_sql("(e.properties -> %(field)s)")
    if not agg.rolls_up:
        sql = (
            f"SELECT e.customer_external_id, {agg.raw_sql} "
            f"FROM metering_event e WHERE e.customer_external_id = ANY(%(ids)s) AND {where} "
            "AND e.timestamp >= %(start)s AND e.timestamp < %(end)s AND e.properties ? %(field)s "
            "GROUP BY e.customer_external_id"
        )
        return sql, params
    hs, he = _hour_ceil(start), _hour_floor(end)
    if hs >= he:
        hs = he = end  # no whole hour inside: everything comes from raw events
    latest = RAW_LATEST if "p.lv" in agg.value_sql else NO_LATEST
    # Whole days inside the whole hours come from the daily rollup, except for latest meters (no latest there).
    de = _day_floor(he)
    if latest is RAW_LATEST or _day_floor(hs) >= de:
        ds = de = he
    else:
        ds = _day_ceil(hs)  # at most de: no overflow even next to FAR_FUTURE
    params.update(hs=hs, he=he, ds=ds, de=de, wm=state.watermark, multiplier=meter.multiplier or Decimal(1))
    # Each rollup range is its own part (an index range on the rollup's unique key); empty ones are left out.
    parts = [RAW_PART.format(num=num, where=where, wm=WATERMARK_SQL, latest=latest)]
    rollup_latest = ROLLUP_LATEST if latest is RAW_LATEST else NO_LATEST
    if hs < ds:
        parts.append(ROLLUP_PART.format(latest=rollup_latest, lo="hs", hi="ds"))
    if de < he:
        parts.append(ROLLUP_PART.format(latest=rollup_latest, lo="de", hi="he"))
    if ds < de:
        parts.append(DAY_PART.format(latest=NO_LATEST))
    sql = f"SELECT p.c, {agg.value_sql} FROM ({' UNION ALL '.join(parts)}) AS p(c, n, s, m, lts, lid, lv) GROUP BY p.c"
    return sql, params


def meter_usage(
    *,
    meter: Meter,
    customer_external_id: str,
    start: datetime,
    end: datetime | None,
    state: MeterReadState | None = None,
) -> Decimal:
    """The meter's value for one customer over the half-open window ``[start, end)`` (``end=None``: no end).

    ``state``: the meter's :class:`MeterReadState` when the caller read it with its own rows (saves a round trip).
    """
    [value] = usage_reads(
        reads=[UsageRead(meter=meter, start=start, end=end)],
        customer_external_ids=[customer_external_id],
        states={meter.id: state} if state is not None else None,
    )
    return value.get(customer_external_id, Decimal(0))


def usage_for_customers(
    *,
    meters: Sequence[Meter],
    customer_external_ids: Iterable[str],
    start: datetime,
    end: datetime | None,
) -> dict[tuple[str, int], Decimal]:
    """Usage of many customers at once: ``{(customer_external_id, meter_id): value}``.

    Two round trips whatever the number of meters (:func:`usage_reads`). Pairs with no event in the window are
    absent (read them as 0). ``end=None`` means no end.
    """
    ids = list(customer_external_ids)
    if not ids or not meters:
        return {}
    values = usage_reads(
        reads=[UsageRead(meter=meter, start=start, end=end) for meter in meters], customer_external_ids=ids
    )
    return {(c, meter.id): v for meter, by_customer in zip(meters, values, strict=True) for c, v in by_customer.items()}


@dataclass(frozen=True)
class UsageRead:
    """One meter over the half-open window ``[start, end)`` (``end=None``: no end)."""

    meter: Meter
    start: datetime
    end: datetime | None


_NAMED_PARAM = re.compile(r"%\((\w+)\)s")


def usage_reads(
    *,
    reads: Sequence[UsageRead],
    customer_external_ids: Iterable[str],
    states: Mapping[int, MeterReadState] | None = None,
) -> list[dict[str, Decimal]]:
    """The value of each read for these customers: ``[{customer_external_id: value}]`` in the order of ``reads``
    (customers with no event in a read's window are absent: read them as 0).

    Every read is one part of ONE statement (``UNION ALL``; each part keeps its own plan), so a customer's
    usage of all its meters, or all its metered entitlements with their own windows, costs one round trip, plus
    one for the meters' :class:`MeterReadState` unless ``states`` (``{meter_id: state}``) holds them all.
    """
    ids = list(customer_external_ids)
    out: list[dict[str, Decimal]] = [{} for _ in reads]
    if not ids or not reads:
        return out
    missing = [r.meter for r in reads if states is None or r.meter.id not in states]
    if missing:
        states = {**(states or {}), **meter_read_states(missing)}
    parts, params = [], {}
    for i, read in enumerate(reads):
        sql, part_params = _usage_query(read.meter, ids, read.start, read.end or FAR_FUTURE, states[read.meter.id])
        if len(reads) == 1:
            parts, params = [f"SELECT 0, q.c, q.v FROM ({sql}) AS q(c, v)"], part_params
            break
        # Each part's named parameters get the part's prefix: one statement, no clash.
        renamed = _NAMED_PARAM.sub(f"%(r{i}_\\1)s", sql)
        parts.append(f"SELECT {i}, q.c, q.v::numeric FROM ({renamed}) AS q(c, v)")
        params.update({f"r{i}_{name}": value for name, value in part_params.items()})
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        for i, customer_id, val in cursor.fetchall():
            out[i][customer_id] = Decimal(val) if val is not None else Decimal(0)
    return out


def meter_ids_with_events(*, customer_external_id: str, start: datetime, end: datetime) -> list[int]:
    """Ids of meters whose event name has at least one event of the customer in the window.

    Filters are ignored here: a meter is listed when its event stream has events (its value may be 0).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT m.id FROM metering_meter m WHERE EXISTS (SELECT 1 FROM metering_event e "
            "WHERE e.customer_external_id = %s AND e.event_name = m.event_name AND e.timestamp >= %s "
            "AND e.timestamp < %s)",
            [customer_external_id, start, end],
        )
        return [row[0] for row in cursor.fetchall()]


# --- Numeric fields per event name (ingestion) ---------------------------------------------------------------

NUMERIC_FIELDS_TTL = 5.0  # seconds a process trusts its copy; a new meter is enforced within this delay


@dataclass
class _Cache:
    loaded_at: float = -1e9
    value: dict[str, dict[str, bool]] | None = None


_cache = _Cache()
_cache_lock = threading.Lock()


def numeric_fields_by_event_name() -> dict[str, dict[str, bool]]:
    """``{event_name: {property: negatives allowed}}`` for the properties numeric meters aggregate.

    One query, cached for a few seconds. When several meters aggregate the same property of the same event
    name, negatives are allowed only if every one of them allows them (a meter that does not must never
    receive a negative value).
    """
    now = time.monotonic()
    value = _cache.value
    if value is not None and now - _cache.loaded_at < NUMERIC_FIELDS_TTL:
        return value
    fields: dict[str, dict[str, bool]] = {}
    rows = Meter.objects.filter(aggregation__in=Meter.NUMERIC).exclude(field="")
    for event_name, field, allow_negative in rows.values_list("event_name", "field", "allow_negative"):
        by_field = fields.setdefault(event_name, {})
        by_field[field] = by_field.get(field, True) and allow_negative
    with _cache_lock:
        _cache.value, _cache.loaded_at = fields, now
    return fields


def numeric_fields_forget() -> None:
    """Drop this process's cached numeric fields (after a meter is created or changed)."""
    with _cache_lock:
        _cache.value = None


# --- Admin / dashboard -----------------------------------------------------------------------------------------


# The customer ids the events name, one index probe each (a skip scan of the (customer, event name, timestamp)
# index), less those of known customers.
_UNKNOWN_IDS_SQL = """
    WITH RECURSIVE ids(c) AS (
        (SELECT customer_external_id FROM metering_event ORDER BY customer_external_id LIMIT 1)
        UNION ALL
        SELECT (SELECT e.customer_external_id FROM metering_event e WHERE e.customer_external_id > ids.c
                ORDER BY e.customer_external_id LIMIT 1)
        FROM ids WHERE ids.c IS NOT NULL
    ), unknown AS (
        SELECT c FROM ids
        WHERE ids.c IS NOT NULL AND NOT EXISTS (SELECT 1 FROM customers_customer cu WHERE cu.external_id = ids.c)
    )
"""


def unknown_customer_event_count(*, cap: int | None = None) -> int:
    """Events whose customer external id matches no customer (yet).

    Walks the distinct customer ids with a skip scan on the (customer, event name, timestamp) index, then
    counts only the unknown ones' events, so it stays quick with millions of events for known customers. With
    ``cap``, at most ``cap + 1`` events are read (a page says "10,000+"), however many the unknown ids sent.
    """
    if cap is None:
        sql = f"""{_UNKNOWN_IDS_SQL}
            SELECT COALESCE(SUM((SELECT COUNT(*) FROM metering_event e WHERE e.customer_external_id = u.c)), 0)
            FROM unknown u"""
        params: list = []
    else:
        sql = f"""{_UNKNOWN_IDS_SQL}
            SELECT COUNT(*) FROM (
                SELECT 1 FROM unknown u,
                LATERAL (SELECT 1 FROM metering_event e WHERE e.customer_external_id = u.c LIMIT %s) x
                LIMIT %s
            ) counted"""
        params = [cap + 1, cap + 1]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(cursor.fetchone()[0])


def unknown_customer_event_top(*, limit: int = 5, cap: int = 100) -> list[dict]:
    """The unknown customer ids with the most events (``{"customer_external_id", "n"}``), each counted up to
    ``cap + 1``: index reads only, never a scan of the event table."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""{_UNKNOWN_IDS_SQL}
            SELECT u.c, (SELECT COUNT(*) FROM (SELECT 1 FROM metering_event e WHERE e.customer_external_id = u.c
                                              LIMIT %s) x) AS n
            FROM unknown u ORDER BY n DESC, u.c LIMIT %s""",
            [cap + 1, limit],
        )
        return [{"customer_external_id": c, "n": int(n)} for c, n in cursor.fetchall()]


def event_count_estimate() -> int:
    """PostgreSQL's row estimate for the event table (the admin shows it instead of a slow COUNT(*))."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [Event._meta.db_table])
        row = cursor.fetchone()
    return max(int(row[0]), 0) if row else 0
