"""Monthly partitions of the event table (docs/metering.md, "Partitions").

``metering_event`` is partitioned by range of ``timestamp``, one partition per UTC calendar month named
``metering_event_pYYYY_MM``, plus ``metering_event_default`` for events outside every monthly partition
(very old or far-future timestamps). A daily beat task creates the partitions of the coming months ahead of
time (:func:`event_partitions_ensure`); an operator detaches an old month to archive it
(:func:`event_partition_detach`), which leaves a plain table holding that month's events.

Rules where the design is silent:

* Partitions are created ``EVENT_PARTITIONS_AHEAD`` months ahead of the current month; a month whose events
  already landed in the default partition (a late creation) gets its partition with those rows moved into it,
  in one transaction.
* Detaching is refused for the current month and the one before (open periods and late events still land
  there), and for the default partition. The detached table keeps its name; archive it (``pg_dump -t``) and
  drop it. The keys of its events stay in ``metering_eventkey``: an event id once used stays used, so a
  re-sent archived event is still a duplicate. The hourly rollup keeps the detached months' hours (invoices
  issued for them never change); a read of a window inside a detached month counts only the rolled-up
  whole hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.db import connection, transaction

EVENT_TABLE = "metering_event"
DEFAULT_PARTITION = "metering_event_default"
EVENT_PARTITIONS_AHEAD = 3


class PartitionError(Exception):
    """A partition operation that would lose or hide events (e.g. detaching the current month)."""


@dataclass(frozen=True)
class EventPartition:
    name: str
    start: datetime | None  # None for the default partition
    end: datetime | None
    estimated_rows: int


def month_start(at: date | datetime) -> datetime:
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def month_add(month: datetime, months: int) -> datetime:
    index = month.year * 12 + month.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(month: datetime) -> str:
    return f"{EVENT_TABLE}_p{month.year:04d}_{month.month:02d}"


def event_partitions_list() -> list[EventPartition]:
    """Every partition of the event table, monthly ones by start, the default partition last."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), GREATEST(c.reltuples::bigint, 0)
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = %s::regclass
            """,
            [EVENT_TABLE],
        )
        rows = cursor.fetchall()
    out = []
    for name, bound, estimate in rows:
        start = end = None
        if bound != "DEFAULT":
            cursor_bounds = _bounds(name)
            start, end = cursor_bounds
        out.append(EventPartition(name=name, start=start, end=end, estimated_rows=int(estimate)))
    return sorted(out, key=lambda p: (p.start is None, p.start or datetime.min.replace(tzinfo=UTC)))


def _bounds(name: str) -> tuple[datetime, datetime]:
    """A monthly partition's range, read from its name (the only names this module creates)."""
    year, month = name.removeprefix(f"{EVENT_TABLE}_p").split("_")
    start = datetime(int(year), int(month), 1, tzinfo=UTC)
    return start, month_add(start, 1)


def _exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        return bool(cursor.fetchone()[0])


@transaction.atomic(durable=True)
def _partition_create(month: datetime) -> bool:
    """Create the month's partition; False when it already exists. Rows of that month waiting in the default
    partition move into it in the same transaction."""
    name, end = partition_name(month), month_add(month, 1)
    with connection.cursor() as cursor:
        # One creator at a time (the beat task and a manual run may overlap).
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('metering.event_partitions'))")
        if _exists(name):
            return False
        # Created apart and attached: ATTACH takes a lighter lock on the event table than CREATE ... PARTITION
        # OF, so ingestion goes on. ATTACH adds the indexes; the key trigger is the event table's own.
        cursor.execute(
            f'CREATE TABLE "{name}" (LIKE {EVENT_TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'  # noqa: S608
        )
        cursor.execute(
            f'WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE "timestamp" >= %s AND "timestamp" < %s '
            f'RETURNING *) INSERT INTO "{name}" SELECT * FROM moved',
            [month, end],
        )
        cursor.execute(
            f'ALTER TABLE {EVENT_TABLE} ATTACH PARTITION "{name}" FOR VALUES FROM (%s) TO (%s)', [month, end]
        )
    return True


def event_partitions_ensure(*, now: datetime, months_ahead: int = EVENT_PARTITIONS_AHEAD) -> list[str]:
    """Create the partitions of the current month and the ``months_ahead`` next ones that do not exist yet;
    returns the names created. Idempotent (a daily beat task runs it)."""
    created = []
    current = month_start(now)
    for offset in range(months_ahead + 1):
        month = month_add(current, offset)
        if _partition_create(month):
            created.append(partition_name(month))
    return created


@transaction.atomic(durable=True)
def event_partition_detach(*, month: date, now: datetime) -> str:
    """Detach one month's partition from the event table (for archiving); returns the table's name.

    The table stays in the database as a plain table until an operator archives and drops it.
    """
    start = month_start(month)
    if start >= month_add(month_start(now), -1):
        raise PartitionError(
            f"{start:%Y-%m} is the current month or the one before: its events still count for open periods."
        )
    name = partition_name(start)
    if name not in {p.name for p in event_partitions_list()}:
        raise PartitionError(f"No partition {name} is attached to {EVENT_TABLE}.")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('metering.event_partitions'))")
        cursor.execute(f'ALTER TABLE {EVENT_TABLE} DETACH PARTITION "{name}"')
    return name
