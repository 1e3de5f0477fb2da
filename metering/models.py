"""Meters and usage events.

An event is stored once per (customer external id, event id): the database enforces it, so a re-sent
event is a harmless duplicate. Events may name customers that do not exist yet; they count once the
customer exists (usage is selected by external id).
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from simple_history.models import HistoricalRecords

from core.history import history_user

from .aggregations import AGGREGATIONS, aggregation_choices


class Meter(models.Model):
    # One member per row of metering/aggregations.py (``Meter.Aggregation.SUM`` ...): a new row changes these
    # choices, so it comes with a migration.
    Aggregation = models.TextChoices(
        "Aggregation", aggregation_choices(), module=__name__, qualname="Meter.Aggregation"
    )

    # Aggregations of a property that must be numeric (checked at ingestion).
    NUMERIC = tuple(key for key, agg in AGGREGATIONS.items() if agg.numeric)

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    event_name = models.CharField(max_length=200, db_index=True)
    aggregation = models.CharField(max_length=24, choices=Aggregation.choices)
    field = models.CharField(max_length=200, blank=True, help_text="The event property aggregated (all but count).")
    multiplier = models.DecimalField(max_digits=28, decimal_places=12, null=True, blank=True)
    allow_negative = models.BooleanField(
        default=False,
        help_text="Accept negative values of the property (corrections). Off: an event with a negative value is "
        "rejected at ingestion.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class MeterFilter(models.Model):
    """An event matches when its ``property`` is one of ``values``; all of a meter's filters must hold."""

    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="filters")
    property = models.CharField(max_length=200)
    values = ArrayField(models.CharField(max_length=200), help_text="Comma-separated values")

    class Meta:
        ordering = ["meter", "id"]

    def __str__(self) -> str:
        return f"{self.property} in {', '.join(self.values)}"


class Event(models.Model):
    """One usage event, append-only. Stored in a table partitioned by month of ``timestamp`` (migration 0004,
    docs/metering.md "Partitions"): its database primary key is ``(id, timestamp)``, ``id`` coming from one
    sequence so it is unique and increasing across partitions. ``(customer_external_id, event_id)`` is unique
    through :class:`EventKey`, which a database trigger fills for every inserted row."""

    id = models.BigAutoField(primary_key=True)
    customer_external_id = models.CharField(max_length=255)
    event_id = models.CharField(max_length=255)
    event_name = models.CharField(max_length=200)
    timestamp = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        # The uniqueness of (customer_external_id, event_id) is EventKey's primary key (see the class docstring).
        indexes = [
            models.Index(fields=["customer_external_id", "event_name", "timestamp"], name="event_customer_name_ts_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_name} {self.event_id} ({self.customer_external_id})"


class EventKey(models.Model):
    """The unique key of events across every partition: one row per stored ``(customer, event_id)``.

    Written only by the ``event_key_take`` trigger on the event table (migration 0004), in the inserting
    statement, so a second copy of an event fails with a unique violation whatever path writes it. A key
    outlives its event when an old partition is detached for archiving: an id once used stays used
    (docs/metering.md).
    """

    pk = models.CompositePrimaryKey("customer_external_id", "event_id")
    customer_external_id = models.CharField(max_length=255)
    event_id = models.CharField(max_length=255)

    def __str__(self) -> str:
        return f"{self.event_id} ({self.customer_external_id})"


class UsageRollup(models.Model):
    """Pre-aggregated usage of one meter for one customer in one UTC hour (docs/metering.md).

    Built incrementally from events with ``id <= MeterRollupState.last_event_id`` (whatever their timestamp,
    so late events are folded into the hour they belong to). Reads add the raw events past the watermark and
    the partial hours at a window's edges, so a value never depends on when the rollup last ran.
    ``latest_*`` keep the event with the greatest (timestamp, id) whose property is numeric, for ``latest``
    meters only (the only ones that read them; NULL for the others).
    """

    # No index of its own: the unique constraint below starts with the meter (a second index cost every fold a
    # write per row, and led the planner to scan a whole meter for a read of a few hundred customers).
    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="+", db_index=False)
    customer_external_id = models.CharField(max_length=255)
    hour = models.DateTimeField()
    event_count = models.BigIntegerField(default=0)
    value_sum = models.DecimalField(max_digits=40, decimal_places=12, null=True)
    value_max = models.DecimalField(max_digits=40, decimal_places=12, null=True)
    latest_at = models.DateTimeField(null=True)
    latest_id = models.BigIntegerField(null=True)
    latest_value = models.DecimalField(max_digits=40, decimal_places=12, null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["meter", "customer_external_id", "hour"], name="usagerollup_unique_meter_customer_hour"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.meter_id} {self.customer_external_id} {self.hour:%Y-%m-%d %H:00}"


class UsageRollupDay(models.Model):
    """The hourly rollup summed by UTC day, for reads of many customers over long windows (docs/metering.md).

    Written in the same statement as :class:`UsageRollup` from the same events, so it holds exactly the events
    with ``id <=`` the meter's watermark too. No latest value: ``latest`` meters read the hourly rollup.
    """

    # No index of its own: the unique constraint below starts with the meter (a second index cost every fold a
    # write per row, and led the planner to scan a whole meter for a read of a few hundred customers).
    meter = models.ForeignKey(Meter, on_delete=models.CASCADE, related_name="+", db_index=False)
    customer_external_id = models.CharField(max_length=255)
    day = models.DateTimeField()
    event_count = models.BigIntegerField(default=0)
    value_sum = models.DecimalField(max_digits=40, decimal_places=12, null=True)
    value_max = models.DecimalField(max_digits=40, decimal_places=12, null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["meter", "customer_external_id", "day"], name="usagerollupday_unique_meter_customer_day"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.meter_id} {self.customer_external_id} {self.day:%Y-%m-%d}"


class MeterRollupState(models.Model):
    """How far a meter's rollup has read the event log: every event with ``id <= last_event_id`` is in it."""

    meter = models.OneToOneField(Meter, on_delete=models.CASCADE, primary_key=True, related_name="+")
    last_event_id = models.BigIntegerField(default=0)
    refreshed_at = models.DateTimeField(null=True)

    def __str__(self) -> str:
        return f"{self.meter_id} up to event {self.last_event_id}"


class EventIdCheckpoint(models.Model):
    """The highest event id seen at an instant. The rollup only reads up to a checkpoint at least a few minutes
    old, so an insert still in flight (its id taken, not yet committed) can never be skipped."""

    taken_at = models.DateTimeField(db_index=True)
    max_event_id = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.max_event_id} at {self.taken_at:%Y-%m-%d %H:%M:%S}"
