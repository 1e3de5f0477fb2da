"""Prepaid credits: wallets, grants (lots) and the append-only credit ledger.

Invariants (kept by database constraints and by wallets.services, the only writer):
- a wallet's ``balance`` always equals the sum of its ledger's ``credits``;
- no grant's ``remaining`` goes below zero or above its ``credits``;
- a grant's ``held`` (credits reserved for draft invoices, :class:`CreditHold`) is between 0 and its
  ``remaining`` and equals the sum of its ``held`` holds; held credits are not spent: they stay in the
  balance until the invoice is finalized;
- ledger rows are never updated or deleted (the admin shows them read-only);
- each ledger row has an idempotency key unique per wallet, so a replayed operation books nothing twice.
Credits are a plain decimal unit (they may be non-monetary); ``conversion_rate`` is currency per credit.
"""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q

from core.money import CURRENCY_CHOICES, format_decimal

CREDITS = {"max_digits": 28, "decimal_places": 12}


class Wallet(models.Model):
    class AppliesTo(models.TextChoices):
        ALL = "all", "All invoice lines"
        USAGE = "usage", "Usage lines only"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CLOSED = "closed", "Closed"

    customer = models.ForeignKey("customers.Customer", on_delete=models.PROTECT, related_name="wallets")
    name = models.CharField(max_length=200, default="Credits")
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES)
    conversion_rate = models.DecimalField(
        **CREDITS, default=1, validators=[MinValueValidator(0)], help_text="Currency units per credit (1 credit = X)."
    )
    applies_to = models.CharField(max_length=5, choices=AppliesTo.choices, default=AppliesTo.ALL)
    low_balance_threshold = models.DecimalField(**CREDITS, null=True, blank=True, validators=[MinValueValidator(0)])
    auto_top_up_credits = models.DecimalField(**CREDITS, null=True, blank=True, validators=[MinValueValidator(0)])
    balance = models.DecimalField(**CREDITS, default=0, help_text="Cached sum of the ledger (updated with it).")
    below_threshold = models.BooleanField(default=False, help_text="Set while the balance is under the threshold.")
    status = models.CharField(max_length=6, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["customer", "created_at", "id"]
        constraints = [models.CheckConstraint(name="wallet_balance_non_negative", condition=Q(balance__gte=0))]

    def __str__(self) -> str:
        return f"{self.name} ({self.customer.external_id}, {self.currency})"


class CreditGrant(models.Model):
    """A lot of credits. Consumed by priority, then soonest expiry, then oldest (wallets.credits)."""

    class Kind(models.TextChoices):
        SIGNUP = "signup", "Signup"
        PROMOTIONAL = "promotional", "Promotional"
        PAID = "paid", "Paid"
        PLAN = "plan", "Plan (recurring)"
        ROLLOVER = "rollover", "Rollover"
        ADJUSTMENT = "adjustment", "Adjustment"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CONSUMED = "consumed", "Used up"
        EXPIRED = "expired", "Expired"
        ROLLED_OVER = "rolled_over", "Rolled over"
        VOIDED = "voided", "Voided"

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="grants")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    name = models.CharField(max_length=200, blank=True)
    credits = models.DecimalField(**CREDITS, validators=[MinValueValidator(0)])
    remaining = models.DecimalField(**CREDITS)
    held = models.DecimalField(
        **CREDITS,
        default=0,
        help_text="Of the remaining credits, how many are reserved for draft invoices (cached sum of its holds).",
    )
    priority = models.PositiveIntegerField(default=10)
    effective_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    # Where plan credits came from: the subscription, its plan grant and the period they were granted for.
    subscription = models.ForeignKey(
        "customers.Subscription", null=True, blank=True, on_delete=models.PROTECT, related_name="credit_grants"
    )
    plan_credit_grant = models.ForeignKey(
        "catalog.PlanCreditGrant", null=True, blank=True, on_delete=models.PROTECT, related_name="wallet_grants"
    )
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    rollover_cap = models.DecimalField(**CREDITS, null=True, blank=True)
    forfeit_on_end = models.BooleanField(default=False)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="rollovers")
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["wallet", "priority", "expires_at", "created_at", "id"]
        constraints = [
            models.CheckConstraint(name="creditgrant_remaining_non_negative", condition=Q(remaining__gte=0)),
            models.CheckConstraint(name="creditgrant_remaining_le_credits", condition=Q(remaining__lte=F("credits"))),
            models.CheckConstraint(
                name="creditgrant_held_within_remaining", condition=Q(held__gte=0) & Q(held__lte=F("remaining"))
            ),
            models.UniqueConstraint(
                fields=["wallet", "idempotency_key"],
                name="creditgrant_unique_idempotency_key",
                condition=Q(idempotency_key__isnull=False),
            ),
        ]
        indexes = [models.Index(fields=["wallet", "status"], name="creditgrant_wallet_status_idx")]

    def __str__(self) -> str:
        credits, left = format_decimal(self.credits), format_decimal(self.remaining)
        return f"{self.get_kind_display()} grant of {credits} ({left} left)"

    @property
    def free(self):
        """Remaining credits not held for a draft invoice: the only ones that may be spent, expire or roll over."""
        return self.remaining - self.held


class CreditHold(models.Model):
    """Credits of one lot reserved for one draft invoice (DESIGN.md: a hold is a reservation, not a spend).

    A hold writes no ledger row and leaves the wallet's ``balance`` alone; it raises its grant's ``held``, so
    nothing else may spend those credits and they neither expire nor roll over while held. When the invoice
    is finalized the hold becomes ``consumed`` together with one ``consume`` ledger row for the same credits;
    when the draft is recalculated (or the hold otherwise given up) it becomes ``released`` and its credits
    are free again, again without a ledger row. Rows are kept (status changes only) as the history of holds.
    ``invoice_id`` is the invoice's id (wallets does not import invoicing).
    """

    class Status(models.TextChoices):
        HELD = "held", "Held"
        CONSUMED = "consumed", "Consumed (invoice finalized)"
        RELEASED = "released", "Released"

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="holds")
    grant = models.ForeignKey(CreditGrant, on_delete=models.PROTECT, related_name="holds")
    invoice_id = models.BigIntegerField(db_index=True, help_text="The draft invoice the credits are held for.")
    credits = models.DecimalField(**CREDITS)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.HELD)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When it was consumed or released.")

    class Meta:
        ordering = ["wallet", "id"]
        constraints = [
            models.CheckConstraint(name="credithold_credits_positive", condition=Q(credits__gt=0)),
            models.UniqueConstraint(
                fields=["grant", "invoice_id"],
                name="credithold_one_per_lot_and_invoice",
                condition=Q(status="held"),
            ),
        ]

    def __str__(self) -> str:
        status = self.get_status_display().lower()
        return f"{format_decimal(self.credits)} credits {status} for invoice {self.invoice_id}"


class LedgerEntry(models.Model):
    """One change of a wallet's balance. Append-only: never updated or deleted.

    ``credits`` is signed (grants positive, consumption/expiry/void negative); ``balance_after`` is the
    wallet's balance right after this row. ``reference`` names what caused it (``invoice:42``, a grant...).
    """

    class Type(models.TextChoices):
        GRANT = "grant", "Grant"
        CONSUME = "consume", "Consume"
        EXPIRE = "expire", "Expire"
        ROLLOVER = "rollover", "Rollover"
        VOID = "void", "Void"
        ADJUSTMENT = "adjustment", "Adjustment"

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="ledger")
    grant = models.ForeignKey(CreditGrant, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger")
    type = models.CharField(max_length=10, choices=Type.choices)
    credits = models.DecimalField(**CREDITS)
    balance_after = models.DecimalField(**CREDITS)
    reference = models.CharField(max_length=200, blank=True)
    invoice_id = models.BigIntegerField(
        null=True, blank=True, db_index=True, help_text="Invoice paid or credited, if any."
    )
    description = models.CharField(max_length=300, blank=True)
    idempotency_key = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "ledger entries"
        ordering = ["wallet", "id"]
        constraints = [
            models.UniqueConstraint(fields=["wallet", "idempotency_key"], name="ledgerentry_unique_idempotency_key"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {format_decimal(self.credits)} (balance {format_decimal(self.balance_after)})"


class LowBalanceAlert(models.Model):
    """Raised once per crossing of a wallet's low-balance threshold."""

    wallet = models.ForeignKey(Wallet, on_delete=models.PROTECT, related_name="alerts")
    balance = models.DecimalField(**CREDITS)
    threshold = models.DecimalField(**CREDITS)
    created_at = models.DateTimeField(auto_now_add=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    top_up_grant = models.ForeignKey(CreditGrant, null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Low balance on {self.wallet}: {format_decimal(self.balance)} < {format_decimal(self.threshold)}"
