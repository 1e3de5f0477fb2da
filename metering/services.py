"""Metering writes: meters, event storage (one statement per batch) and the hourly usage rollup."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DataError, IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from core.errors import ValidationFailed
from core.numbers import NumberInvalid, decimal_parse

from .aggregations import AGGREGATIONS
from .ingest import CleanEvent
from .models import EventIdCheckpoint, Meter, MeterFilter, MeterRollupState, UsageRollup, UsageRollupDay
from .selectors import meter_filter_sql, numeric_fields_forget, numeric_params, numeric_sql
from .statistics import event_statistics_refresh

logger = logging.getLogger(__name__)

# --- Meters ---------------------------------------------------------------------------------------------------

# A meter's filters become one SQL condition per filter, with one parameter per value, in every usage read.
MAX_FILTERS = 20
MAX_FILTER_VALUES = 100


def meter_filters_clean(filters: Any) -> list[tuple[str, list[str]]]:
    """``[{"property": str, "values": [str, ...]}]`` -> ``[(property, values)]``; ValidationFailed naming "filters".

    At most ``MAX_FILTERS`` filters of at most ``MAX_FILTER_VALUES`` values each.
    """
    if filters is None:
        return []
    if not isinstance(filters, list):
        raise ValidationFailed("Must be a list of {property, values}.", field="filters")
    if len(filters) > MAX_FILTERS:
        raise ValidationFailed(f"At most {MAX_FILTERS} filters; got {len(filters)}.", field="filters")
    out = []
    for i, item in enumerate(filters):
        if not isinstance(item, dict) or set(item) - {"property", "values"}:
            raise ValidationFailed(f"Filter {i}: must be an object with 'property' and 'values'.", field="filters")
        prop, values = item.get("property"), item.get("values")
        if not isinstance(prop, str) or not prop.strip() or len(prop) > 200:
            raise ValidationFailed(f"Filter {i}: 'property' must be a non-empty string.", field="filters")
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) and v != "" and len(v) <= 200 for v in values)
        ):
            raise ValidationFailed(f"Filter {i}: 'values' must be a non-empty list of strings.", field="filters")
        if len(values) > MAX_FILTER_VALUES:
            raise ValidationFailed(
                f"Filter {i}: at most {MAX_FILTER_VALUES} values; got {len(values)}.", field="filters"
            )
        out.append((prop, list(dict.fromkeys(values))))
    return out


def meter_definition_clean(*, aggregation: str, field: str, multiplier: Any) -> tuple[str, Decimal | None]:
    """Check the aggregation/field/multiplier rules (the aggregation's row in metering/aggregations.py says
    whether it reads a property and takes a multiplier); returns (field, multiplier)."""
    if aggregation not in AGGREGATIONS:
        raise ValidationFailed(
            f"Unknown aggregation '{aggregation}'; choose one of {', '.join(AGGREGATIONS)}.",
            field="aggregation",
        )
    agg = AGGREGATIONS[aggregation]
    field = (field or "").strip()
    if not agg.field:
        if field:
            raise ValidationFailed(f"A {aggregation} meter counts events and takes no field.", field="field")
    elif not field:
        raise ValidationFailed(f"A {aggregation} meter needs the property it aggregates.", field="field")
    if agg.multiplier:
        if multiplier in (None, ""):
            raise ValidationFailed(f"{aggregation} needs a multiplier.", field="multiplier")
        try:
            value = decimal_parse(multiplier, max_digits=28, decimal_places=12)
        except NumberInvalid as exc:
            raise ValidationFailed(exc.message, field="multiplier") from None
        return field, value
    if multiplier not in (None, ""):
        takers = ", ".join(key for key, row in AGGREGATIONS.items() if row.multiplier)
        raise ValidationFailed(f"Only {takers} meters take a multiplier.", field="multiplier")
    return field, None


# What a meter counts. Fixed once a published plan version prices or entitles by the meter, or an issued invoice
# has a line measured by it: changing it would re-rate history that must not change (DESIGN.md, Catalog).
# The name is only a label and stays editable.
METER_DEFINITION_FIELDS = ("key", "event_name", "aggregation", "field", "multiplier", "filters")


def meter_locked_message(field: str, reason: str) -> str:
    return f"Cannot change {field}: {reason}. Create a new meter instead."


@transaction.atomic(durable=True)
def meter_create(
    *,
    key: str,
    name: str,
    event_name: str,
    aggregation: str,
    field: str = "",
    multiplier: Any = None,
    filters: Any = None,
    allow_negative: bool = False,
) -> Meter:
    """Create a meter with its filters (:func:`meter_create_in_transaction` in its own transaction)."""
    return meter_create_in_transaction(
        key=key,
        name=name,
        event_name=event_name,
        aggregation=aggregation,
        field=field,
        multiplier=multiplier,
        filters=filters,
        allow_negative=allow_negative,
    )


@transaction.atomic(savepoint=False)
def meter_create_in_transaction(
    *,
    key: str,
    name: str,
    event_name: str,
    aggregation: str,
    field: str = "",
    multiplier: Any = None,
    filters: Any = None,
    allow_negative: bool = False,
) -> Meter:
    """Create a meter with its filters. A duplicate key is a 400 naming ``key`` (enforced by the database).

    ``allow_negative``: events may carry negative values of the property (corrections); by default they are
    rejected at ingestion (docs/metering.md).
    """
    field, mult = meter_definition_clean(aggregation=aggregation, field=field, multiplier=multiplier)
    cleaned = meter_filters_clean(filters)
    try:
        with transaction.atomic():
            meter = Meter.objects.create(
                key=key,
                name=name,
                event_name=event_name,
                aggregation=aggregation,
                field=field,
                multiplier=mult,
                allow_negative=allow_negative,
            )
    except IntegrityError:
        raise ValidationFailed(f"A meter with key '{key}' already exists.", field="key") from None
    MeterFilter.objects.bulk_create(MeterFilter(meter=meter, property=p, values=v) for p, v in cleaned)
    transaction.on_commit(numeric_fields_forget)
    return meter


@transaction.atomic(savepoint=False)
def meter_rollup_reset(*, meter: Meter) -> None:
    """Forget a meter's rollup after its definition changed; reads fall back to raw events until it is rebuilt.

    Call inside a transaction (the admin's save runs in one).
    """
    UsageRollup.objects.filter(meter=meter).delete()
    UsageRollupDay.objects.filter(meter=meter).delete()
    MeterRollupState.objects.filter(meter=meter).delete()
    transaction.on_commit(numeric_fields_forget)


# --- Events ---------------------------------------------------------------------------------------------------

INSERT_EVENTS = """
INSERT INTO metering_event (customer_external_id, event_id, event_name, "timestamp", properties, received_at)
SELECT u.c, u.i, u.n, u.t::timestamptz, u.p::jsonb, now()
FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) AS u(c, i, n, t, p)
WHERE NOT EXISTS (SELECT 1 FROM metering_eventkey k WHERE k.customer_external_id = u.c AND k.event_id = u.i)
"""
STORE_ATTEMPTS = 5


def events_store(*, events: Sequence[CleanEvent]) -> int:
    """Store validated events in ONE statement; returns how many were new (the rest are duplicates).

    A batch of ``COPY_MIN_EVENTS`` or more, outside a transaction, is first tried with one ``COPY``
    (:func:`_events_copy`, the raw load rate); when one of its events is already stored that COPY is undone
    whole and the batch takes the statement below. Otherwise one
    ``INSERT ... SELECT FROM unnest(arrays) WHERE NOT EXISTS (its key in metering_eventkey)``: five array
    parameters whatever the batch size, so the statement text and the round trips are constant. The
    statement is atomic on its own (autocommit), so no explicit transaction is opened: that would add two
    round trips (BEGIN, COMMIT) per batch. Callers remove duplicates inside a batch first (first one wins).

    The key table is filled by the events' insert trigger (migration 0004): should another request store one
    of these events between the check and the insert, the trigger's unique violation undoes this statement
    and it runs again, now seeing that event as a duplicate (``STORE_ATTEMPTS`` times at most; called inside
    a transaction, the violation is raised instead, as the transaction is aborted).
    """
    if not events:
        return 0
    # A batch without duplicates (the usual case) goes in with COPY; otherwise, or in a caller's transaction:
    if len(events) >= COPY_MIN_EVENTS and not connection.in_atomic_block and _events_copy(events):
        return len(events)
    params = [
        [e.customer for e in events],
        [e.event_id for e in events],
        [e.event_name for e in events],
        [e.timestamp for e in events],
        [e.properties for e in events],
    ]
    for attempt in range(STORE_ATTEMPTS):
        try:
            with connection.cursor() as cursor:
                cursor.execute(INSERT_EVENTS, params)
                return cursor.rowcount
        except IntegrityError:
            # Inside a caller's transaction the failed statement has aborted it: the caller decides.
            if connection.in_atomic_block or attempt == STORE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


COPY_MIN_EVENTS = 20
COPY_EVENTS = (
    'COPY metering_event (customer_external_id, event_id, event_name, "timestamp", properties, received_at) FROM STDIN'
)


def _events_copy(events: Sequence[CleanEvent]) -> bool:
    """Store a batch with one ``COPY`` (the raw load rate); False, with nothing stored, when one of the events
    is already stored: then the caller's ``INSERT ... WHERE NOT EXISTS`` sorts the new ones from the duplicates.

    COPY is one statement in autocommit: the insert fence and the key trigger run for it as for the INSERT
    (migrations 0004, 0005), and the key trigger's unique violation undoes the whole statement. A batch sent
    again (a client retrying) so costs one COPY undone plus the INSERT; a fresh batch costs the COPY alone.
    """
    data = _copy_text(events, received_at=timezone.now().isoformat())
    if data is None:
        return False

    def copy_execute(sql, params, many, context):
        with context["cursor"].cursor.copy(sql) as copy:
            copy.write(params[0])

    # Through the connection's execute wrappers, as every statement Django runs (instrumentation, tests).
    executor = copy_execute
    for wrapper in reversed(connection.execute_wrappers):
        executor = functools.partial(wrapper, executor)
    try:
        with connection.cursor() as cursor, connection.wrap_database_errors:
            executor(COPY_EVENTS, [data], False, {"connection": connection, "cursor": cursor})
    except IntegrityError:
        return False
    return True


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(events: Sequence[CleanEvent], *, received_at: str) -> str | None:
    """The events as COPY text rows, built and escaped in a few C-speed string passes instead of per field.

    Fields are first joined by NUL, which no field holds (the event checks refuse NUL in text fields and in
    properties, and JSON text cannot carry a raw one), then escaped, then NUL becomes the column separator;
    the count of NULs checks that before the rows are sent (None otherwise: the INSERT path stores them).
    """
    joined = "\x00\x00".join(
        [f"{e.customer}\x00{e.event_id}\x00{e.event_name}\x00{e.timestamp}\x00{e.properties}" for e in events]
    )
    if joined.count("\x00") != 6 * len(events) - 2:
        return None
    end = f"\t{received_at}\n"
    return joined.translate(_COPY_ESCAPES).replace("\x00\x00", end).replace("\x00", "\t") + end


# --- Hourly rollup --------------------------------------------------------------------------------------------

ROLLUP_LAG = timedelta(minutes=5)
# A refresh folds again what arrived while it folded, for at most ROLLUP_CHASE_SECONDS; fewer than
# ROLLUP_CHASE_MIN_EVENTS new events: it waits ROLLUP_CHASE_PAUSE_SECONDS for more first; none: it ends.
ROLLUP_CHASE_MIN_EVENTS = 2_000
ROLLUP_CHASE_PAUSE_SECONDS = 0.1
ROLLUP_CHASE_SECONDS = 10.0
ROLLUP_CHUNK = 500_000  # event ids per transaction when catching up

ROLLUP_MERGE = """
WITH src AS (
    SELECT e.customer_external_id AS c, date_trunc('hour', e.timestamp, 'UTC') AS h, e.id, e.timestamp AS ts,
           {num} AS num, e.properties ? %(field)s AS has
    FROM metering_event e
    WHERE e.id > %(lo)s AND e.id <= %(hi)s AND {where}
), agg AS (
    SELECT c, h, COUNT(*) AS n, SUM(num) AS s, MAX(num) AS m, {latest}
    FROM src WHERE %(is_count)s OR has GROUP BY c, h
), days AS (
    -- The same events summed by UTC day, in the same statement (docs/metering.md, the daily rollup).
    INSERT INTO metering_usagerollupday AS d (meter_id, customer_external_id, day, event_count, value_sum, value_max)
    SELECT %(meter_id)s, c, date_trunc('day', h, 'UTC'), SUM(n), SUM(s), MAX(m) FROM agg
    GROUP BY c, date_trunc('day', h, 'UTC')
    ON CONFLICT (meter_id, customer_external_id, day) DO UPDATE SET
        event_count = d.event_count + EXCLUDED.event_count,
        value_sum = CASE WHEN d.value_sum IS NULL THEN EXCLUDED.value_sum
                         WHEN EXCLUDED.value_sum IS NULL THEN d.value_sum
                         ELSE d.value_sum + EXCLUDED.value_sum END,
        value_max = GREATEST(d.value_max, EXCLUDED.value_max)
)
INSERT INTO metering_usagerollup AS r
    (meter_id, customer_external_id, hour, event_count, value_sum, value_max, latest_at, latest_id, latest_value)
SELECT %(meter_id)s, c, h, n, s, m, lts, lid, lv FROM agg
ON CONFLICT (meter_id, customer_external_id, hour) DO UPDATE SET
    event_count = r.event_count + EXCLUDED.event_count,
    value_sum = CASE WHEN r.value_sum IS NULL THEN EXCLUDED.value_sum
                     WHEN EXCLUDED.value_sum IS NULL THEN r.value_sum
                     ELSE r.value_sum + EXCLUDED.value_sum END,
    value_max = GREATEST(r.value_max, EXCLUDED.value_max),
    latest_at = CASE WHEN {newer} THEN EXCLUDED.latest_at ELSE r.latest_at END,
    latest_id = CASE WHEN {newer} THEN EXCLUDED.latest_id ELSE r.latest_id END,
    latest_value = CASE WHEN {newer} THEN EXCLUDED.latest_value ELSE r.latest_value END
"""
# The latest event of each hour, kept only for the meters that read it (``latest``): its three sorted array
# aggregates were two thirds of a refresh's time (40,000 events: 300 ms with them, 110 ms without). The other
# meters store NULL there and never read it; a meter whose aggregation changes gets its rollup rebuilt
# (``meter_rollup_reset``), so a meter turned into a ``latest`` one never reads a NULL left by its old definition.
ROLLUP_LATEST = """
           (ARRAY_AGG(ts ORDER BY ts DESC, id DESC) FILTER (WHERE num IS NOT NULL))[1] AS lts,
           (ARRAY_AGG(id ORDER BY ts DESC, id DESC) FILTER (WHERE num IS NOT NULL))[1] AS lid,
           (ARRAY_AGG(num ORDER BY ts DESC, id DESC) FILTER (WHERE num IS NOT NULL))[1] AS lv"""
ROLLUP_NO_LATEST = "NULL::timestamptz AS lts, NULL::bigint AS lid, NULL::numeric AS lv"
NEWER = (
    "(EXCLUDED.latest_value IS NOT NULL AND (r.latest_value IS NULL OR "
    "(EXCLUDED.latest_at, EXCLUDED.latest_id) > (r.latest_at, r.latest_id)))"
)


# The advisory lock every insert into the event table takes shared before drawing an id (migration 0005).
ROLLUP_FENCE_KEY = 7305640117
ROLLUP_FENCE_TIMEOUT = "2s"


def _rollup_fenced_event_id() -> int | None:
    """The highest committed event id, read while no insert is in flight; None when the fence could not be
    taken within ``ROLLUP_FENCE_TIMEOUT`` (a long transaction inserting events holds it).

    Every insert statement takes the fence shared before its first id is drawn (migration 0005), so holding it
    exclusively means every drawn id is committed or rolled back, and every later insert draws a higher id:
    nothing at or below the returned id can still appear. Ingestion waits only for the instant it is held.
    """
    try:
        with transaction.atomic(durable=True), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{ROLLUP_FENCE_TIMEOUT}'")
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ROLLUP_FENCE_KEY])
            cursor.execute("SELECT MAX(id) FROM metering_event")
            return cursor.fetchone()[0] or 0
    except OperationalError:  # lock_timeout
        logger.warning("usage rollup: the insert fence was busy; reading up to a checkpoint instead")
        return None


def _rollup_safe_event_id(*, now: datetime, lag: timedelta) -> int:
    """Record the current highest event id, and return the highest one recorded at least ``lag`` ago.

    Inserts are single short statements, so every event with an id at or below a checkpoint taken ``lag``
    ago has committed (or failed) by now; reading up to it never skips an event still in flight.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM metering_event ORDER BY id DESC LIMIT 1")
        row = cursor.fetchone()
    EventIdCheckpoint.objects.create(taken_at=now, max_event_id=row[0] if row else 0)
    safe = EventIdCheckpoint.objects.filter(taken_at__lte=now - lag).order_by("-taken_at", "-id").first()
    if safe is None:
        return 0
    EventIdCheckpoint.objects.filter(taken_at__lt=safe.taken_at).delete()
    return safe.max_event_id


@transaction.atomic(durable=True)
def _meter_rollup_step(*, meter_id: int, upto: int, now: datetime) -> bool:
    """Fold the next chunk of events into one meter's rollup; returns True when more remain."""
    state, _ = MeterRollupState.objects.get_or_create(meter_id=meter_id)
    state = MeterRollupState.objects.select_for_update().get(pk=state.pk)  # one refresher per meter at a time
    meter = Meter.objects.prefetch_related("filters").get(pk=meter_id)
    agg = AGGREGATIONS[meter.aggregation]
    if not agg.rolls_up or state.last_event_id >= upto:
        return False
    hi = min(upto, state.last_event_id + ROLLUP_CHUNK)
    where, where_params = meter_filter_sql(meter)
    latest = ROLLUP_LATEST if "p.lv" in agg.value_sql else ROLLUP_NO_LATEST  # as the reads decide (selectors)
    sql = ROLLUP_MERGE.format(num=numeric_sql("(e.properties -> %(field)s)"), where=where, newer=NEWER, latest=latest)
    params = {
        "lo": state.last_event_id,
        "hi": hi,
        "field": meter.field or "",
        "meter_id": meter.id,
        "is_count": agg.counts_every_event,
        **where_params,
        **numeric_params(meter),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    state.last_event_id = hi
    state.refreshed_at = now
    state.save(update_fields=["last_event_id", "refreshed_at"])
    return hi < upto


class RollupFailed(Exception):
    """Some meters' rollup could not advance (the others did); their usage reads stay exact from raw events."""


def usage_rollup_refresh(*, now: datetime, lag: timedelta | None = None, meters: Sequence[Meter] | None = None) -> int:
    """Fold events that arrived since the last run into every meter's hourly rollup; returns the watermark.

    ``lag=None`` (the scheduled and after-ingest refreshes): up to the highest committed event id, read behind
    the insert fence (:func:`_rollup_fenced_event_id`); when the fence is busy, up to the checkpoint taken
    ``ROLLUP_LAG`` ago. An explicit ``lag``: up to the checkpoint taken that long ago.

    Idempotent and safe to run concurrently (each meter's state row is locked while it advances). Usage
    reads are exact whether or not this has run; it only makes them fast.

    Meters are independent: the SQL casts only values in the property grammar, so no stored event can make
    a step fail, and should a step still fail on its data (``DataError``, e.g. a sum past the column), that
    meter keeps its watermark, the other meters advance, and :class:`RollupFailed` names it at the end.

    Then the event partitions whose statistics miss many rows are analyzed (``metering.statistics``), so a
    read right after a burst plans its raw tail on the partition as it is.
    """
    upto = _rollup_fenced_event_id() if lag is None else None
    if upto is None:
        with transaction.atomic(durable=True):
            upto = _rollup_safe_event_id(now=now, lag=ROLLUP_LAG if lag is None else lag)
    failed: list[str] = []
    chase_until = time.monotonic() + ROLLUP_CHASE_SECONDS
    while True:
        for meter in meters if meters is not None else Meter.objects.all():
            if meter.key in failed:
                continue
            try:
                while _meter_rollup_step(meter_id=meter.id, upto=upto, now=now):
                    pass
            except DataError:
                logger.exception("usage rollup of meter %s failed; the other meters go on", meter.key)
                failed.append(meter.key)
        # Events stored while folding (a burst): fold them too, for a while, so the raw tail a read scans right
        # after the burst is what arrived during the last pass, not a whole refresh interval's worth. A few
        # events: wait a moment for more; none (ingestion stopped): done.
        if lag is not None or time.monotonic() > chase_until:
            break
        newest = _rollup_fenced_event_id()
        if newest is not None and 0 < newest - upto < ROLLUP_CHASE_MIN_EVENTS:
            time.sleep(ROLLUP_CHASE_PAUSE_SECONDS)
            newest = _rollup_fenced_event_id()
        if newest is None or newest <= upto:
            break
        upto = newest
    event_statistics_refresh()  # a burst's partition gets its statistics now, not minutes later
    if failed:
        raise RollupFailed(f"The usage rollup of meter(s) {', '.join(failed)} failed (logged); the others advanced.")
    return upto


def usage_rollup_soon(*, enqueue: Callable[[float], Any]) -> None:
    """Queue one rollup refresh after events were stored, at most once per ``USAGE_ROLLUP_AFTER_INGEST_SECONDS``
    (shared through the cache: Redis in production), so a read right after a burst scans only the events of
    the last second or so. ``enqueue(delay)`` sends the refresh task to run ``delay`` seconds later (the
    caller passes it: tasks sit above services); it folds everything committed by then.
    """
    delay = settings.USAGE_ROLLUP_AFTER_INGEST_SECONDS
    if delay <= 0 or not cache.add("metering:usage_rollup_soon", 1, timeout=delay):
        return
    transaction.on_commit(lambda: enqueue(delay))
