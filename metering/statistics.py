"""Planner statistics of the event partitions, kept fresh by the rollup refresh (docs/metering.md "Right after
a burst").

A usage read chooses between two ways of reading its raw tail (events above the rollup's watermark): the
primary key ``(id, timestamp)`` from the watermark up, or the customer's index. Which one is right depends on
how many of the partition's rows belong to the customer and how many lie above the watermark, and the planner
learns both from the partition's statistics. Right after a burst (a new month's partition that filled within
seconds) those statistics still describe the partition before the burst, and autovacuum only analyzes it a
minute or two later: the planner then read all 300,000 events of a heavy customer through its index instead
of the short tail by primary key.

The rollup tables are written by the refresh itself, and the reads of many customers (an invoice run's batch,
the alert and threshold watch) choose between the unique index per customer and a scan of a whole meter's rows
by their statistics: a rollup never analyzed looked empty to the planner, which then read a meter's month for
a batch of 200 customers (93,000 rows where 6,200 were needed). They follow the same rule.

Rule: every rollup refresh analyzes each event partition (and each rollup table) that has at least
``ANALYZE_MIN_CHANGED_ROWS`` rows changed since its last analyze and at least ``ANALYZE_CHANGED_FRACTION`` of its
rows (the proportion autovacuum uses by default, without its wait: with autovacuum off, as on some test
machines, nothing else would). ``ANALYZE (SKIP_LOCKED)``: a partition being analyzed
elsewhere is left to that run. An analyze reads a fixed sample (30,000 rows at the default statistics
target), so its cost does not grow with the partition.
"""

from __future__ import annotations

import logging

from django.db import connection

from .models import UsageRollup, UsageRollupDay
from .partitions import EVENT_TABLE

logger = logging.getLogger(__name__)

ANALYZE_MIN_CHANGED_ROWS = 10_000
ANALYZE_CHANGED_FRACTION = 0.1

_STALE_PARTITIONS_SQL = """
SELECT c.relname
FROM pg_class c
JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE (c.oid IN (SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = %s::regclass) OR c.relname = ANY(%s))
  AND s.n_mod_since_analyze >= %s
  AND s.n_mod_since_analyze >= %s * GREATEST(c.reltuples, 0)
ORDER BY c.relname
"""


def event_partitions_stale() -> list[str]:
    """The event partitions and rollup tables whose statistics miss many of their rows (see the rule above)."""
    rollups = [UsageRollup._meta.db_table, UsageRollupDay._meta.db_table]
    with connection.cursor() as cursor:
        cursor.execute(
            _STALE_PARTITIONS_SQL, [EVENT_TABLE, rollups, ANALYZE_MIN_CHANGED_ROWS, ANALYZE_CHANGED_FRACTION]
        )
        return [row[0] for row in cursor.fetchall()]


def event_statistics_refresh() -> list[str]:
    """Analyze the stale event partitions and rollup tables; returns their names. Runs outside any transaction
    (autocommit), so the new statistics serve every read at once."""
    names = event_partitions_stale()
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f'ANALYZE (SKIP_LOCKED) "{name}"')  # a name read from pg_class, quoted
    if names:
        logger.info("event statistics refreshed: %s", ", ".join(names))
    return names
