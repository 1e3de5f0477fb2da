"""The rollup refresh analyzes an event partition whose statistics miss many of its rows (metering/statistics.py,
docs/metering.md "Rollup freshness"): a burst's partition is planned as it is, not as it was."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from metering import statistics
from metering.partitions import event_partitions_ensure, partition_name
from metering.services import usage_rollup_refresh

MONTH = datetime(2031, 3, 1, tzinfo=UTC)


def _analyzed(name: str) -> tuple[int, int]:
    """(analyze count, rows changed since the last analyze) of a partition, once the counters are flushed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT analyze_count + autoanalyze_count, n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = %s",
            [name],
        )
        return cursor.fetchone()


@pytest.mark.django_db(transaction=True)
def test_a_refresh_analyzes_a_partition_filled_by_a_burst(monkeypatch):
    monkeypatch.setattr(statistics, "ANALYZE_MIN_CHANGED_ROWS", 300)
    event_partitions_ensure(now=MONTH, months_ahead=0)
    name = partition_name(MONTH)
    with connection.cursor() as cursor:  # a burst of 500 events in March 2031, committed (autocommit)
        # Earlier tests of the run may have left rows changed in other partitions (the default one): analyze them
        # first, so that the burst's partition is the one this test watches.
        cursor.execute("ANALYZE metering_event")
        cursor.execute(
            "INSERT INTO metering_event (customer_external_id, event_id, event_name, timestamp, properties, "
            "received_at) SELECT 'c1', 'b-' || g, 'api_call', %s + g * interval '1 second', '{}'::jsonb, now() "
            "FROM generate_series(1, 500) AS g",
            [MONTH],
        )
        cursor.execute("SELECT pg_stat_force_next_flush()")
    deadline = time.monotonic() + 5  # this backend's counters reach the shared statistics when it is idle
    while _analyzed(name)[1] < 500 and time.monotonic() < deadline:
        time.sleep(0.2)
    before = _analyzed(name)
    # 500 rows changed since the last analyze >= 300, and >= 10% of the partition's 0 analyzed rows: stale.
    assert before[1] == 500 and name in statistics.event_partitions_stale()
    usage_rollup_refresh(now=MONTH + timedelta(days=1))
    deadline = time.monotonic() + 5
    while _analyzed(name)[0] == before[0] and time.monotonic() < deadline:
        time.sleep(0.2)
    after = _analyzed(name)
    assert after == (before[0] + 1, 0)  # analyzed once: nothing changed since
    assert name not in statistics.event_partitions_stale()


@pytest.mark.django_db(transaction=True)
def test_a_refresh_analyzes_the_rollup_tables_it_filled(monkeypatch):
    """The rollup tables follow the same rule: once a refresh wrote many rollup rows, the next refresh analyzes
    them, so a read of many customers is planned by the customer index, not by a scan of the meter's rows
    (autovacuum may be off). A refresh's own writes reach the statistics counters once its backend is idle."""
    from metering.models import UsageRollup, UsageRollupDay
    from tests.factories.metering import MeterFactory

    monkeypatch.setattr(statistics, "ANALYZE_MIN_CHANGED_ROWS", 300)
    meter = MeterFactory(event_name="rollup_stats_call")
    event_partitions_ensure(now=MONTH, months_ahead=0)
    hourly, daily = UsageRollup._meta.db_table, UsageRollupDay._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {hourly}")
        cursor.execute(f"ANALYZE {daily}")
        # 600 customers with one event each on 2 March 2031: 600 new hourly rows and 600 new daily rows.
        cursor.execute(
            "INSERT INTO metering_event (customer_external_id, event_id, event_name, timestamp, properties, "
            "received_at) SELECT 'rs-' || g, 'rs-' || g, 'rollup_stats_call', %s + g * interval '1 second', "
            "'{}'::jsonb, now() FROM generate_series(1, 600) AS g",
            [MONTH + timedelta(days=1)],
        )
    usage_rollup_refresh(now=MONTH + timedelta(days=2), meters=[meter])  # folds: 600 + 600 rollup rows written
    assert UsageRollupDay.objects.filter(meter=meter).count() == 600
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
    deadline = time.monotonic() + 5  # the fold's counters reach the shared statistics once its backend is idle
    while min(_analyzed(n)[1] for n in (hourly, daily)) < 600 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {hourly, daily} <= set(statistics.event_partitions_stale())
    before = {name: _analyzed(name)[0] for name in (hourly, daily)}
    usage_rollup_refresh(now=MONTH + timedelta(days=2), meters=[meter])  # the next refresh analyzes them
    deadline = time.monotonic() + 5
    while any(_analyzed(n)[0] == before[n] for n in before) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert {name: _analyzed(name)[0] for name in before} == {name: count + 1 for name, count in before.items()}
    assert not {hourly, daily} & set(statistics.event_partitions_stale())
