"""Meters and usage events.

An event is stored once per (customer external id, event id): the database enforces it, so a re-sent
event is a harmless duplicate. Events may name customers that do not exist yet; they count once the
customer exists (usage is selected by external id).
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from simple_history.models import HistoricalRecords


class Meter(models.Model):
    class Aggregation(models.TextChoices):
        COUNT = "count", "Count events"
        SUM = "sum", "Sum of a property"
        MAX = "max", "Maximum of a property"
        LATEST = "latest", "Latest value of a property"
        COUNT_UNIQUE = "count_unique", "Count distinct values of a property"
        SUM_WITH_MULTIPLIER = "sum_with_multiplier", "Sum of a property × multiplier"

    NUMERIC = (Aggregation.SUM, Aggregation.MAX, Aggregation.LATEST, Aggregation.SUM_WITH_MULTIPLIER)

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    event_name = models.CharField(max_length=200, db_index=True)
    aggregation = models.CharField(max_length=24, choices=Aggregation.choices)
    field = models.CharField(max_length=200, blank=True, help_text="The event property aggregated (all but count).")
    multiplier = models.DecimalField(max_digits=28, decimal_places=12, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords()

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
    id = models.BigAutoField(primary_key=True)
    customer_external_id = models.CharField(max_length=255)
    event_id = models.CharField(max_length=255)
    event_name = models.CharField(max_length=200)
    timestamp = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer_external_id", "event_id"], name="event_unique_customer_event_id"),
        ]
        indexes = [
            models.Index(fields=["customer_external_id", "event_name", "timestamp"], name="event_customer_name_ts_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_name} {self.event_id} ({self.customer_external_id})"
