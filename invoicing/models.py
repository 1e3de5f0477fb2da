"""Invoices, their lines, payments, credit notes and gapless number sequences.

Stored amounts are ``Decimal(19, 4)`` already quantized to the currency's minor unit (half-up, once per
line); the invoice's currency is on the invoice. At most one invoice exists per subscription and billing
boundary (``invoice_unique_subscription_boundary``): re-running a job never bills twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models
from django.db.models import Q

from core.money import CURRENCY_CHOICES, format_money

MONEY = {"max_digits": 19, "decimal_places": 4}
QTY = {"max_digits": 28, "decimal_places": 12}


class NumberSequence(models.Model):
    """A gapless counter (``invoice``, ``credit_note``): locked FOR UPDATE when a number is taken."""

    name = models.CharField(max_length=50, unique=True)
    prefix = models.CharField(max_length=20)
    last_value = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}: {self.prefix}{self.last_value:06d}"


@dataclass(frozen=True)
class BillTo:
    """Who an invoice is addressed to, as the document shows it (the address parts may be empty)."""

    name: str
    email: str
    external_id: str
    address_line1: str = ""
    address_line2: str = ""
    city: str = ""
    postal_code: str = ""
    country: str = ""
    timezone: str = "UTC"

    @classmethod
    def of_customer(cls, customer) -> BillTo:
        return cls(
            name=customer.name,
            email=customer.email,
            external_id=customer.external_id,
            address_line1=customer.address_line1,
            address_line2=customer.address_line2,
            city=customer.address_city,
            postal_code=customer.address_postal_code,
            country=customer.address_country,
            timezone=customer.timezone or "UTC",
        )

    @property
    def address_lines(self) -> list[str]:
        """The postal address as printed: street lines, "postal code city", country; empty parts left out."""
        town = " ".join(part for part in (self.postal_code, self.city) if part)
        return [line for line in (self.address_line1, self.address_line2, town, self.country) if line]


class InvoiceQuerySet(models.QuerySet):
    def finalized(self):
        return self.exclude(status__in=[Invoice.Status.DRAFT])

    def drafts(self):
        return self.filter(status=Invoice.Status.DRAFT)


class InvoiceReason(models.TextChoices):
    """Why an invoice was issued (``Invoice.Reason``), stored when it is created; recalculating a draft
    dispatches on it. ``change``, ``trial_end`` and ``progressive`` are for the subscription changes, trials
    and progressive billing of DESIGN.md."""

    START = "start", "Subscription start"
    BOUNDARY = "boundary", "Period end"
    CANCEL = "cancel", "Canceled at once"
    CREDIT_PURCHASE = "credit_purchase", "Credit purchase"
    CHANGE = "change", "Plan change"
    TRIAL_END = "trial_end", "Trial end"
    PROGRESSIVE = "progressive", "Progressive billing"
    ONE_OFF = "one_off", "One-off"


class Invoice(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        FINALIZED = "finalized", "Finalized"
        PAID = "paid", "Paid"
        VOID = "void", "Void"
        UNCOLLECTIBLE = "uncollectible", "Uncollectible"

    class Kind(models.TextChoices):
        SUBSCRIPTION = "subscription", "Subscription"
        CREDIT_PURCHASE = "credit_purchase", "Credit purchase"
        ONE_OFF = "one_off", "One-off"
        PROGRESSIVE = "progressive", "Progressive billing"

    Reason = InvoiceReason

    number = models.CharField(max_length=40, null=True, blank=True, unique=True)
    status = models.CharField(max_length=14, choices=Status.choices, default=Status.DRAFT)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.SUBSCRIPTION)
    reason = models.CharField(
        max_length=16,
        choices=Reason.choices,
        help_text=(
            "Why it was issued: a subscription's start, a period's end, an immediate cancellation, a credit purchase..."
        ),
    )
    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="invoices")
    subscription = models.ForeignKey(
        "customers.Subscription", null=True, blank=True, on_delete=models.PROTECT, related_name="invoices"
    )
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    billing_boundary_at = models.DateTimeField(
        null=True, blank=True, help_text="The period boundary this invoice bills (subscription start or a period end)."
    )
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    issued_at = models.DateTimeField(null=True, blank=True)
    finalize_after = models.DateTimeField(
        null=True, blank=True, help_text="Drafts are finalized by the first run at or after this instant."
    )
    finalized_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    subtotal = models.DecimalField(**MONEY, default=0)
    discount = models.DecimalField(
        **MONEY, default=0, help_text="Coupons' discount, taken off the subtotal before tax (InvoiceCoupon rows)."
    )
    tax = models.DecimalField(**MONEY, default=0)
    total = models.DecimalField(**MONEY, default=0)
    credits_applied = models.DecimalField(**MONEY, default=0, help_text="Wallet credits applied, in money.")
    credit_notes_total = models.DecimalField(**MONEY, default=0)
    amount_paid = models.DecimalField(**MONEY, default=0)
    amount_due = models.DecimalField(**MONEY, default=0)
    tax_breakdown = models.JSONField(default=list, blank=True)
    progressive_billing_credit = models.DecimalField(
        **MONEY,
        default=0,
        help_text="What progressive invoices of the same period already billed, deducted before tax.",
    )
    progressive_threshold = models.DecimalField(
        **QTY,
        null=True,
        blank=True,
        help_text="Progressive invoices: the first threshold level this invoice's evaluation crossed (one invoice "
        "per subscription and crossing).",
    )
    progressive_threshold_reached = models.DecimalField(
        **QTY,
        null=True,
        blank=True,
        help_text="Progressive invoices: the highest threshold level reached (later crossings start above it).",
    )
    # The customer as billed, copied at finalization: an issued document never changes when the customer is
    # edited later. Drafts show the customer as it is now.
    bill_to_name = models.CharField(max_length=255, blank=True)
    bill_to_email = models.EmailField(blank=True)
    bill_to_external_id = models.CharField(max_length=255, blank=True)
    bill_to_address_line1 = models.CharField(max_length=200, blank=True)
    bill_to_address_line2 = models.CharField(max_length=200, blank=True)
    bill_to_city = models.CharField(max_length=100, blank=True)
    bill_to_postal_code = models.CharField(max_length=20, blank=True)
    bill_to_country = models.CharField(max_length=2, blank=True)
    # The customer's timezone at finalization: the document's dates are shown in it (UTC instants stay stored).
    bill_to_timezone = models.CharField(max_length=64, default="UTC")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "billing_boundary_at"],
                name="invoice_unique_subscription_boundary",
                condition=Q(subscription__isnull=False, billing_boundary_at__isnull=False),
            ),
            # DESIGN.md "Commitments and progressive billing": a threshold crossing invoices once, whatever the
            # number of runs evaluating it at the same time.
            models.UniqueConstraint(
                fields=["subscription", "progressive_threshold"],
                name="invoice_unique_progressive_crossing",
                condition=Q(reason="progressive"),
            ),
            # Every creation path names its reason: an invoice created without one is refused, not guessed.
            models.CheckConstraint(name="invoice_reason_known", condition=Q(reason__in=InvoiceReason.values)),
        ]
        indexes = [
            models.Index(fields=["status", "finalize_after"], name="invoice_status_finalize_idx"),
            models.Index(fields=["customer", "status"], name="invoice_customer_status_idx"),
        ]

    def __str__(self) -> str:
        return self.number or f"Draft #{self.pk}"

    @property
    def bill_to(self) -> BillTo:
        """The snapshot once finalized (paid, void, uncollectible too); the customer as it is now for a draft."""
        if self.status != self.Status.DRAFT and self.bill_to_external_id:
            return BillTo(
                name=self.bill_to_name,
                email=self.bill_to_email,
                external_id=self.bill_to_external_id,
                address_line1=self.bill_to_address_line1,
                address_line2=self.bill_to_address_line2,
                city=self.bill_to_city,
                postal_code=self.bill_to_postal_code,
                country=self.bill_to_country,
                timezone=self.bill_to_timezone,
            )
        return BillTo.of_customer(self.customer)


class InvoiceLine(models.Model):
    class Kind(models.TextChoices):
        FIXED = "fixed", "Fixed fee"
        USAGE = "usage", "Usage"
        PRORATION = "proration", "Prorated fixed fee"
        CREDIT_PURCHASE = "credit_purchase", "Credit purchase"
        ADJUSTMENT = "adjustment", "Adjustment"
        ONE_OFF = "one_off", "One-off"
        COMMITMENT = "commitment", "Minimum commitment true-up"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    description = models.CharField(max_length=500)
    price = models.ForeignKey("catalog.Price", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    plan_version = models.ForeignKey(
        "catalog.PlanVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    meter = models.ForeignKey("metering.Meter", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    quantity = models.DecimalField(**QTY, default=0)
    unit_amount = models.DecimalField(**QTY, null=True, blank=True)
    amount = models.DecimalField(**MONEY, default=0)
    discount = models.DecimalField(
        **MONEY, default=0, help_text="This line's share of the coupons' discount (details['discounts'] says whose)."
    )
    progressive_billing_credit = models.DecimalField(
        **MONEY, default=0, help_text="This line's share of the invoice's progressive billing credit (before tax)."
    )
    tax = models.DecimalField(**MONEY, default=0)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    details = models.JSONField(
        default=dict, blank=True, help_text="Why this amount: tier breakdown, proration, plan version."
    )

    class Meta:
        ordering = ["invoice", "position", "id"]

    def __str__(self) -> str:
        return self.description


class Payment(models.Model):
    class Method(models.TextChoices):
        OFFLINE = "offline", "Offline (bank transfer, cheque...)"
        WALLET = "wallet", "Wallet credits"

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="payments")
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    method = models.CharField(max_length=10, choices=Method.choices, default=Method.OFFLINE)
    reference = models.CharField(max_length=200, blank=True)
    paid_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-paid_at", "-id"]
        constraints = [models.CheckConstraint(name="payment_amount_positive", condition=Q(amount__gt=0))]

    def __str__(self) -> str:
        return f"{format_money(self.amount, self.currency)} on {self.invoice}"


class CreditNote(models.Model):
    class RefundTo(models.TextChoices):
        INVOICE = "invoice", "Reduce what the invoice owes"
        WALLET = "wallet", "Refund to the customer's wallet"

    number = models.CharField(max_length=40, unique=True)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    reason = models.CharField(max_length=500)
    refund_to = models.CharField(max_length=8, choices=RefundTo.choices, default=RefundTo.INVOICE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(name="creditnote_amount_positive", condition=Q(amount__gt=0))]

    def __str__(self) -> str:
        return self.number


class BillingRun(models.Model):
    """The outcome of one ``run_billing`` (by hand, beat or the demo): shown on the admin dashboard."""

    #: ``trigger`` of the rows a Celery chunk records for its failures (the beat's run has "beat").
    CHUNK_TRIGGER = "celery-chunk"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Finished with failures"

    as_of = models.DateTimeField(help_text="The instant the run billed up to (UTC).")
    customer_external_id = models.CharField(max_length=255, blank=True)
    trigger = models.CharField(max_length=20, default="manual")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    failures = models.JSONField(default=list, blank=True)
    failed_subscriptions = models.JSONField(
        default=list,
        blank=True,
        help_text='Subscriptions whose billing failed: [{"subscription", "customer", "boundary", "error"}].',
    )
    summary = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        from core.instants import format_instant

        return f"Billing run as of {format_instant(self.as_of)} ({self.get_status_display()})"

    @property
    def counts_text(self) -> str:
        """What the run did, in words: "12 invoices created, 3 finalized, 12 period boundaries billed";
        "Nothing was due." when it did nothing (failures are told apart, from ``failures``)."""
        counts = self.counts or {}
        parts = []
        for key, one, many in COUNT_WORDS:
            n = int(counts.get(key) or 0)
            if n:
                parts.append(f"{n:,} {one if n == 1 else many}")
        return ", ".join(parts) if parts else "Nothing was due."


# ``BillingRun.counts`` keys in the order people read them, with their words for one and for several.
COUNT_WORDS = (
    ("invoices_created", "invoice created", "invoices created"),
    ("invoices_finalized", "finalized", "finalized"),
    ("boundaries", "period boundary billed", "period boundaries billed"),
    ("grants_expired", "credit grant expired", "credit grants expired"),
    ("alerts", "low-balance alert", "low-balance alerts"),
)


class Coupon(models.Model):
    """A discount finance can apply to customers (DESIGN.md "Coupons, one-off invoices"); ``code`` addresses it.

    ``fixed``: ``amount`` in ``currency``; ``percentage``: ``percentage`` of the lines in (0, 100]. ``duration``:
    ``once`` (a fixed coupon keeps what one invoice did not use until spent; a percentage applies to one invoice),
    ``repeating`` (``periods`` invoices), ``forever``. ``plans``: the plans whose lines it discounts (none: all).
    ``expires_at``: it cannot be applied after this instant (customers who have it keep it).
    """

    class Kind(models.TextChoices):
        FIXED = "fixed", "Fixed amount"
        PERCENTAGE = "percentage", "Percentage"

    class Duration(models.TextChoices):
        ONCE = "once", "Once"
        REPEATING = "repeating", "Repeating"
        FOREVER = "forever", "Forever"

    code = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    amount = models.DecimalField(**MONEY, null=True, blank=True)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, blank=True)
    percentage = models.DecimalField(max_digits=7, decimal_places=4, null=True, blank=True)
    duration = models.CharField(max_length=10, choices=Duration.choices, default=Duration.ONCE)
    periods = models.PositiveIntegerField(null=True, blank=True, help_text="Invoices a repeating coupon applies to.")
    plans = models.ManyToManyField("catalog.Plan", blank=True, related_name="+")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Cannot be applied to a customer after this.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                name="coupon_terms_of_its_kind",
                condition=(
                    Q(kind="fixed", amount__gt=0, percentage__isnull=True) & ~Q(currency="")
                    | Q(kind="percentage", amount__isnull=True, percentage__gt=0, percentage__lte=100, currency="")
                ),
            ),
            models.CheckConstraint(
                name="coupon_periods_iff_repeating",
                condition=Q(duration="repeating", periods__gte=1)
                | (~Q(duration="repeating") & Q(periods__isnull=True)),
            ),
        ]

    def __str__(self) -> str:
        return self.code

    @property
    def terms_text(self) -> str:
        """``10.00 fixed, once`` / ``10% off, repeating 3 invoices`` / ``25% off, forever``."""
        if self.kind == self.Kind.FIXED:
            value = f"{format_money(self.amount, self.currency)} fixed"
        else:
            value = f"{self.percentage.normalize():f}% off"
        if self.duration == self.Duration.REPEATING:
            return f"{value}, repeating {self.periods} invoice{'s' if self.periods != 1 else ''}"
        return f"{value}, {self.duration}"


class AppliedCoupon(models.Model):
    """A coupon applied to a customer: what remains of it, and whether it still applies.

    Written only under the customer's lock (services.coupons): the customer first, then these rows.
    ``remaining_amount``: a ``once`` fixed coupon's balance; ``remaining_periods``: the invoices a ``repeating``
    coupon (or a ``once`` percentage, 1) still applies to; both null when unlimited. ``used``: nothing remains;
    ``expired``/``removed``: ended by finance (future invoices only; drafts keep their discount).
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        USED = "used", "Used"
        EXPIRED = "expired", "Expired"
        REMOVED = "removed", "Removed"

    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="applied_coupons")
    coupon = models.ForeignKey(Coupon, on_delete=models.PROTECT, related_name="applications")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    remaining_amount = models.DecimalField(**MONEY, null=True, blank=True)
    remaining_periods = models.PositiveIntegerField(null=True, blank=True)
    applied_at = models.DateTimeField(help_text="When it was applied: it applies to invoices created after.")
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["customer", "applied_at", "id"]
        constraints = [
            models.CheckConstraint(
                name="appliedcoupon_remaining_not_negative",
                condition=Q(remaining_amount__isnull=True) | Q(remaining_amount__gte=0),
            ),
        ]
        indexes = [models.Index(fields=["customer", "status"], name="appliedcoupon_customer_idx")]

    def __str__(self) -> str:
        return f"{self.coupon.code} for {self.customer}"


class InvoiceCoupon(models.Model):
    """What one applied coupon took from one invoice: ``amount`` and the "why" as the document shows it.

    ``counted``: the invoice counted as one of the coupon's invoices (a repeating period, a once percentage).
    ``given_back_at``: a void gave the coupon back what it took (the row stays: the voided document shows it).
    """

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="coupon_discounts")
    applied_coupon = models.ForeignKey(AppliedCoupon, on_delete=models.PROTECT, related_name="discounts")
    position = models.PositiveIntegerField(default=0)
    amount = models.DecimalField(**MONEY)
    counted = models.BooleanField(default=True)
    explanation = models.CharField(max_length=300, blank=True)
    given_back_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["invoice", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "applied_coupon"], name="invoicecoupon_unique_per_invoice"),
            models.CheckConstraint(name="invoicecoupon_amount_not_negative", condition=Q(amount__gte=0)),
        ]

    def __str__(self) -> str:
        return self.explanation or f"{self.applied_coupon} on {self.invoice}"


class Addon(models.Model):
    """Something billed once (an onboarding package, a settlement): a one-off invoice line may name it, taking its
    name and default amount unless the line says otherwise."""

    key = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    amount = models.DecimalField(**MONEY, help_text="Default amount of a line for it.")
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["key"]
        constraints = [models.CheckConstraint(name="addon_amount_not_negative", condition=Q(amount__gte=0))]

    def __str__(self) -> str:
        return f"{self.name} ({self.key})"


class SubscriptionMigration(models.Model):
    """Audit row, append-only: one subscription moved to another version of its plan by a migration.

    ``effective_at`` is the start of the first period billed with ``to_version`` (the end of the period that was
    current when it moved); periods before it, billed or not, keep ``from_version``.
    """

    subscription = models.ForeignKey(
        "customers.Subscription", on_delete=models.PROTECT, related_name="version_migrations"
    )
    from_version = models.ForeignKey("catalog.PlanVersion", on_delete=models.PROTECT, related_name="+")
    to_version = models.ForeignKey("catalog.PlanVersion", on_delete=models.PROTECT, related_name="+")
    effective_at = models.DateTimeField(help_text="The first period billed with the new version starts here.")
    migrated_at = models.DateTimeField()
    actor = models.CharField(max_length=150, blank=True, help_text="Who asked for it (an admin user or an API key).")

    class Meta:
        ordering = ["-migrated_at", "-id"]

    def __str__(self) -> str:
        return f"#{self.subscription_id}: v{self.from_version.number} -> v{self.to_version.number}"


class BacktestRun(models.Model):
    """A backtest run in the background (thousands of subscriptions): its progress, then its result.

    ``result`` holds the API shape of the backtest (``Backtest.as_dict``); nothing else is written by a backtest.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a worker"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    plan_version = models.ForeignKey("catalog.PlanVersion", on_delete=models.CASCADE, related_name="+")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    done = models.PositiveIntegerField(default=0, help_text="Subscriptions priced so far.")
    total = models.PositiveIntegerField(default=0, help_text="Subscriptions with billed periods in the window.")
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Backtest of {self.plan_version} ({self.get_status_display()})"

    @property
    def percent(self) -> int:
        return 100 if self.status == self.Status.DONE else (self.done * 100 // self.total if self.total else 0)
