"""What is sold: features, plans and their versions, prices (with tiers), entitlements, plan credit grants.

A plan's price lives in its *versions*. Finance edits a ``draft``; publishing makes it effective from a
date and read-only forever after (a new price is a new version). Prices keep plain ``Decimal`` amounts
(28 digits, 12 decimal places, e.g. $0.000002 per token) in the plan's single currency, which is stored
once on the plan; ``Money`` objects are built at the service boundary.

``Feature.meter`` and ``Price.meter`` point at ``metering.Meter``: metering (events and meter definitions) is the
layer below catalog, so catalog may read meters and metering never reads the catalog (README "Layout").
"""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from core.history import history_user
from core.money import CURRENCY_CHOICES, format_decimal, format_money

from .price_models import price_model_choices

AMOUNT = {"max_digits": 28, "decimal_places": 12}
NON_NEGATIVE = [MinValueValidator(0)]


class Feature(models.Model):
    class Type(models.TextChoices):
        BOOLEAN = "boolean", "On/off"
        METERED = "metered", "Metered (backed by a meter)"
        STATIC = "static", "Static value"

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=10, choices=Type.choices)
    meter = models.ForeignKey(
        "metering.Meter",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="features",
        help_text="Metered features only: the meter that counts their usage.",
    )
    unit_name = models.CharField(max_length=50, blank=True, help_text="e.g. characters, minutes, seats")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(
                name="feature_meter_iff_metered",
                condition=(Q(type="metered", meter__isnull=False) | (~Q(type="metered") & Q(meter__isnull=True))),
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class Plan(models.Model):
    class Interval(models.TextChoices):
        WEEK = "week", "Weekly (calendar weeks from Monday)"
        MONTH = "month", "Monthly"
        QUARTER = "quarter", "Quarterly (Jan 1, Apr 1, Jul 1, Oct 1)"
        YEAR = "year", "Yearly"

    key = models.SlugField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    interval = models.CharField(max_length=7, choices=Interval.choices, default=Interval.MONTH)
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class PlanVersion(models.Model):
    """A numbered, versioned price sheet of a plan. Published versions are immutable (services enforce it)."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    effective_from = models.DateTimeField(
        help_text="UTC. Periods starting at or after this instant bill with this version."
    )
    published_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)
    minimum_commitment = models.DecimalField(
        **AMOUNT,
        null=True,
        blank=True,
        help_text=(
            "The least a billing period bills before discounts and tax, in the plan's currency (prorated by days "
            "for a partial period). When the period's fixed fees and usage come to less, its invoice gets a "
            "commitment line for the difference. Empty: no minimum."
        ),
    )
    progressive_thresholds = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            "Usage amounts (lifetime, in the plan's currency) at which the period's usage so far is invoiced at "
            'once: [{"amount": "200.00", "recurring": false}], increasing; at most one recurring threshold, the '
            "last (it fires again at every multiple of its amount above the highest fixed one). Empty: usage is "
            "billed at the period's end."
        ),
    )
    trial_days = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(365)],
        help_text="Free trial for new subscriptions, in days (0 = none): no fixed fees for trial days.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["plan", "number"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "number"], name="planversion_unique_plan_number"),
        ]
        indexes = [models.Index(fields=["plan", "status", "effective_from"], name="planversion_effective_idx")]

    def __str__(self) -> str:
        return f"{self.plan.key} v{self.number} ({self.status})"

    @property
    def is_published(self) -> bool:
        return self.status == self.Status.PUBLISHED

    @property
    def has_progressive_billing(self) -> bool:
        return bool(self.progressive_thresholds)


class Price(models.Model):
    """A price of a version. What each ``model`` means, keeps and charges is its row in catalog/price_models.py."""

    # One member per row of catalog/price_models.py (``Price.Model.TIERED`` ...): a new row changes these choices,
    # so it comes with a migration.
    Model = models.TextChoices("Model", price_model_choices(), module=__name__, qualname="Price.Model")

    class Timing(models.TextChoices):
        IN_ADVANCE = "in_advance", "In advance"
        IN_ARREARS = "in_arrears", "In arrears"

    class TierMode(models.TextChoices):
        GRADUATED = "graduated", "Graduated (each unit at its tier's rate)"
        VOLUME = "volume", "Volume (all units at the final tier's rate)"

    plan_version = models.ForeignKey(PlanVersion, on_delete=models.CASCADE, related_name="prices")
    name = models.CharField(max_length=200)
    model = models.CharField(max_length=10, choices=Model.choices)
    meter = models.ForeignKey("metering.Meter", null=True, blank=True, on_delete=models.PROTECT, related_name="prices")
    timing = models.CharField(max_length=10, choices=Timing.choices)
    amount = models.DecimalField(
        **AMOUNT, null=True, blank=True, validators=NON_NEGATIVE, help_text="flat_fee: amount per period"
    )
    unit_amount = models.DecimalField(
        **AMOUNT, null=True, blank=True, validators=NON_NEGATIVE, help_text="per_unit: price of one unit"
    )
    package_size = models.DecimalField(**AMOUNT, null=True, blank=True, validators=NON_NEGATIVE)
    package_amount = models.DecimalField(**AMOUNT, null=True, blank=True, validators=NON_NEGATIVE)
    tier_mode = models.CharField(max_length=10, choices=TierMode.choices, blank=True)
    position = models.PositiveIntegerField(default=0)
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["plan_version", "position", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_usage(self) -> bool:
        return self.meter_id is not None


class Tier(models.Model):
    """One tier of a tiered price. ``up_to`` is inclusive; the last tier has none."""

    price = models.ForeignKey(Price, on_delete=models.CASCADE, related_name="tiers")
    position = models.PositiveIntegerField(default=0)
    up_to = models.DecimalField(
        **AMOUNT, null=True, blank=True, help_text="Last unit of this tier (inclusive); empty for the last tier."
    )
    unit_amount = models.DecimalField(**AMOUNT, default=0, validators=NON_NEGATIVE)
    flat_amount = models.DecimalField(**AMOUNT, default=0, validators=NON_NEGATIVE)
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["price", "position", "id"]

    def __str__(self) -> str:
        """``up to 5,000: $0.01/unit + $50.00`` (money in the plan's currency, core.money's display rule)."""
        currency = self.price.plan_version.plan.currency if self.price_id else None

        def money(value):
            return format_money(value, currency) if currency else format_decimal(value)

        bound = "and up" if self.up_to is None else f"up to {format_decimal(self.up_to)}"
        flat = f" + {money(self.flat_amount)}" if self.flat_amount else ""
        return f"{bound}: {money(self.unit_amount)}/unit{flat}"


class Entitlement(models.Model):
    class Reset(models.TextChoices):
        BILLING_PERIOD = "billing_period", "Each billing period"
        DAY = "day", "Daily"
        WEEK = "week", "Weekly"
        MONTH = "month", "Monthly (calendar)"
        YEAR = "year", "Yearly (calendar)"
        NEVER = "never", "Never"

    plan_version = models.ForeignKey(PlanVersion, on_delete=models.CASCADE, related_name="entitlements")
    feature = models.ForeignKey(Feature, on_delete=models.PROTECT, related_name="entitlements")
    enabled = models.BooleanField(default=True)
    limit = models.DecimalField(
        **AMOUNT,
        null=True,
        blank=True,
        validators=NON_NEGATIVE,
        help_text="Metered: usage limit per reset window; empty = unlimited.",
    )
    reset = models.CharField(max_length=20, choices=Reset.choices, default=Reset.BILLING_PERIOD)
    soft = models.BooleanField(default=False, help_text="Soft limit: usage past it is allowed and flagged.")
    value = models.CharField(max_length=200, blank=True, help_text="Static features: the value, e.g. 192kbps or 3.")
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["plan_version", "feature__key"]
        constraints = [
            models.UniqueConstraint(fields=["plan_version", "feature"], name="entitlement_unique_version_feature"),
        ]

    def __str__(self) -> str:
        return f"{self.feature.key} on {self.plan_version}"


class PlanCreditGrant(models.Model):
    class Cadence(models.TextChoices):
        PER_PERIOD = "per_period", "Every billing period"
        ONCE = "once", "Once, at subscription start"

    plan_version = models.ForeignKey(PlanVersion, on_delete=models.CASCADE, related_name="credit_grants")
    name = models.CharField(max_length=200)
    credits = models.DecimalField(**AMOUNT, validators=NON_NEGATIVE)
    cadence = models.CharField(max_length=12, choices=Cadence.choices, default=Cadence.PER_PERIOD)
    rollover_cap = models.DecimalField(
        **AMOUNT,
        null=True,
        blank=True,
        validators=NON_NEGATIVE,
        help_text="Unused credits that may carry into the next period. Empty = all roll over; 0 = none.",
    )
    expire_after_periods = models.PositiveIntegerField(
        null=True, blank=True, help_text="Credits expire this many periods after their grant. Empty = never by age."
    )
    forfeit_on_end = models.BooleanField(
        default=True, help_text="Unused credits are forfeited when the subscription ends."
    )
    priority = models.PositiveIntegerField(default=10, help_text="Lower numbers are spent first.")
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["plan_version", "priority", "id"]

    def __str__(self) -> str:
        return f"{self.name}: {format_decimal(self.credits)} credits"
