"""Who buys: customers, tax rates and subscriptions (with their current billing period on the row)."""

from __future__ import annotations

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from simple_history.models import HistoricalRecords

from core.history import history_user
from core.money import CURRENCY_CHOICES, format_percent


class TaxRate(models.Model):
    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    percentage = models.DecimalField(
        max_digits=7,
        decimal_places=4,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="e.g. 20 for 20%",
    )
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({format_percent(self.percentage)})"


class Customer(models.Model):
    external_id = models.CharField(max_length=255, unique=True, help_text="Your system's id for this customer.")
    name = models.CharField(max_length=255)
    email = models.EmailField(blank=True)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    tax_rates = models.ManyToManyField(TaxRate, blank=True, related_name="customers")
    net_payment_terms = models.PositiveIntegerField(default=0, help_text="Days after issue until an invoice is due.")
    invoice_grace_days = models.PositiveIntegerField(
        default=0, help_text="Days a new invoice stays a draft before it is finalized (0 = at once)."
    )
    # The billing address printed on invoices (all optional); copied onto each invoice at finalization.
    address_line1 = models.CharField("address line 1", max_length=200, blank=True)
    address_line2 = models.CharField("address line 2", max_length=200, blank=True)
    address_city = models.CharField("city", max_length=100, blank=True)
    address_postal_code = models.CharField("postal code", max_length=20, blank=True)
    address_country = models.CharField(
        "country",
        max_length=2,
        blank=True,
        help_text="Two-letter ISO 3166 code, e.g. GB, US, DE.",
        validators=[RegexValidator(r"^[A-Z]{2}$", "Must be a two-letter ISO 3166 country code in capitals, e.g. GB.")],
    )
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        help_text="IANA zone, e.g. America/Los_Angeles: calendar periods and proration follow its local midnight. "
        "A change applies from the next period.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(m2m_fields=[tax_rates], get_user=history_user)

    ADDRESS_FIELDS = ("address_line1", "address_line2", "address_city", "address_postal_code", "address_country")

    class Meta:
        ordering = ["external_id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"


class Subscription(models.Model):
    """A customer on a plan. ``current_period_*`` always hold the period being served now (half-open, UTC).

    ``plan_version`` is the version billing the current period: the pinned one, else the plan's published
    version in effect at the period's start (customers.services.subscription_version_for).
    """

    class Billing(models.TextChoices):
        CALENDAR = "calendar", "Calendar (1st of the month)"
        ANNIVERSARY = "anniversary", "Anniversary (from the start date)"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        ENDED = "ended", "Ended"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    plan = models.ForeignKey("catalog.Plan", on_delete=models.PROTECT, related_name="subscriptions")
    pinned_version = models.ForeignKey(
        "catalog.PlanVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="pinned_subscriptions",
        help_text="Grandfathered: bill every period with this version.",
    )
    plan_version = models.ForeignKey(
        "catalog.PlanVersion",
        on_delete=models.PROTECT,
        related_name="subscriptions",
        help_text="The version billing the current period.",
    )
    billing = models.CharField(max_length=12, choices=Billing.choices, default=Billing.CALENDAR)
    start_at = models.DateTimeField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    current_period_start = models.DateTimeField()
    current_period_end = models.DateTimeField()
    cancel_at_period_end = models.BooleanField(default=False)
    canceled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Negotiated prices (catalog.overrides): [{"price": name, "unit_amount": "0.008", ...}], in force for the current
    # period; a change waits in pending_price_overrides (null: none) until the next period starts.
    price_overrides = models.JSONField(default=list, blank=True)
    pending_price_overrides = models.JSONField(null=True, blank=True)
    # Trials and plan changes (DESIGN.md "Subscription changes", trials; invoicing.services.changes).
    trial_end = models.DateTimeField(
        null=True, blank=True, help_text="End of the free trial (no fixed fees before it); empty without a trial."
    )
    previous_subscription = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="next_subscription",
        help_text="The subscription this one replaced by a plan change (it ended when this one started).",
    )
    scheduled_plan = models.ForeignKey(
        "catalog.Plan",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="scheduled_subscriptions",
        help_text="A plan change scheduled for the current period's end.",
    )
    scheduled_pinned_version = models.ForeignKey(
        "catalog.PlanVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="scheduled_subscriptions",
        help_text="The version the scheduled change pins, if any.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = HistoricalRecords(get_user=history_user)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "current_period_end"], name="subscription_due_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                name="subscription_period_order",
                condition=models.Q(current_period_start__lt=models.F("current_period_end")),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer.external_id} on {self.plan.key} (#{self.pk})"

    def in_trial_at(self, at) -> bool:
        """Whether ``at`` falls in the free trial (before ``trial_end``)."""
        return self.trial_end is not None and at < self.trial_end

    @property
    def next_subscription_or_none(self) -> Subscription | None:
        """The subscription that replaced this one by a plan change, or None (the reverse one-to-one)."""
        try:
            return self.next_subscription
        except Subscription.DoesNotExist:
            return None
