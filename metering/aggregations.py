"""The meter aggregations, one row each: what every part of metering knows about an aggregation lives in its row.

A row gives the aggregation's key and label, whether it reads a property (``field``), whether that property must be
a number (``numeric``: checked at ingestion), whether it takes the meter's multiplier, whether every matching event
counts or only those with the property, and its SQL. Everything else reads this table:

* ``Meter.aggregation``'s choices (metering/models.py): a new row changes them, so it comes with a migration;
* the definition rules of ``metering.services.meter_definition_clean`` (API and admin);
* the usage reads (``metering.selectors``) and the hourly rollup (``metering.services``);
* the numeric check at ingestion (``Meter.NUMERIC``).

SQL: ``value_sql`` is the aggregation's value from the combined hourly parts ``p(c, n, s, m, lts, lid, lv)``
(customer, event count, sum, max, and the latest value's timestamp, id and value; see metering/selectors.py),
so it is exact whether or not the rollup has run. An aggregation that cannot be added up across hours gives
``raw_sql`` instead: its value over the window's raw events ``e`` (it never reads the rollup). Parameters:
``%(field)s`` (the property), ``%(multiplier)s``.

So a new aggregation is its row here plus a migration (docs/how-to-add-an-aggregation.md).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AGGREGATIONS", "Aggregation", "aggregation_choices"]


@dataclass(frozen=True)
class Aggregation:
    key: str
    label: str
    field: bool = True
    numeric: bool = True
    multiplier: bool = False
    counts_every_event: bool = False
    value_sql: str | None = None
    raw_sql: str | None = None

    @property
    def rolls_up(self) -> bool:
        """Its value adds up across hours, so it reads the hourly rollup (``value_sql``)."""
        return self.value_sql is not None


AGGREGATIONS: dict[str, Aggregation] = {
    agg.key: agg
    for agg in (
        Aggregation(
            key="count",
            label="Count events",
            field=False,
            numeric=False,
            counts_every_event=True,
            value_sql="COALESCE(SUM(p.n), 0)",
        ),
        Aggregation(key="sum", label="Sum of a property", value_sql="COALESCE(SUM(p.s), 0)"),
        Aggregation(key="max", label="Maximum of a property", value_sql="COALESCE(MAX(p.m), 0)"),
        Aggregation(
            key="latest",
            label="Latest value of a property",
            value_sql="COALESCE((ARRAY_AGG(p.lv ORDER BY p.lts DESC, p.lid DESC) FILTER (WHERE p.lv IS NOT NULL))[1], 0)",
        ),
        Aggregation(
            key="count_unique",
            label="Count distinct values of a property",
            numeric=False,
            raw_sql="COUNT(DISTINCT e.properties ->> %(field)s)::numeric",
        ),
        Aggregation(
            key="sum_with_multiplier",
            label="Sum of a property × multiplier",
            multiplier=True,
            value_sql="COALESCE(SUM(p.s), 0) * %(multiplier)s::numeric",
        ),
    )
}


def aggregation_choices() -> list[tuple[str, tuple[str, str]]]:
    """``Meter.Aggregation``'s members, one per row: ``[("COUNT", ("count", "Count events")), ...]``."""
    return [(key.upper(), (key, agg.label)) for key, agg in AGGREGATIONS.items()]
