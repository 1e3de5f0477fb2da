"""Usage and spend alerts (the endpoints, events and deliveries are at the bottom, in ``core.models``)."""

from __future__ import annotations

from decimal import Decimal

from django.db import models


class Alert(models.Model):
    """A customer's alert: ``usage`` (a meter's value in the current period) or ``spend`` (the current period's
    amount so far: the upcoming invoice's subtotal) against ``thresholds``, ``[{"value": "1000", "recurring":
    false}]`` (decimal strings; at most one recurring)."""

    class Kind(models.TextChoices):
        USAGE = "usage", "Usage"
        SPEND = "spend", "Spend"

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="alerts")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    meter = models.ForeignKey("metering.Meter", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    thresholds = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind="usage", meter__isnull=False) | models.Q(kind="spend", meter__isnull=True),
                name="alert_meter_for_usage_only",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.customer_id})"

    @property
    def fixed_levels(self) -> list[Decimal]:
        return [Decimal(t["value"]) for t in self.thresholds if not t.get("recurring")]

    @property
    def recurring_level(self) -> Decimal | None:
        return next((Decimal(t["value"]) for t in self.thresholds if t.get("recurring")), None)


class AlertTrigger(models.Model):
    """One level reached in one period: written once (the unique constraint), listed on the alert, sent as
    ``alert.triggered``. ``threshold`` is the level crossed, ``value`` the measured value then. Append-only."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="triggers")
    threshold = models.DecimalField(max_digits=28, decimal_places=12)
    value = models.DecimalField(max_digits=28, decimal_places=12)
    period_start = models.DateTimeField()
    triggered_at = models.DateTimeField()

    class Meta:
        ordering = ["-triggered_at", "-threshold"]
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "period_start", "threshold"], name="alerttrigger_once_per_period_level"
            )
        ]

    def __str__(self) -> str:
        return f"{self.alert.name}: {self.threshold} reached"
