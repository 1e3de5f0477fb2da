"""Platform rows: API keys, the API audit trail and the record of billing runs."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models


class ApiKey(models.Model):
    """An API key. Only a SHA-256 hash and a short visible prefix are stored; the key is shown once."""

    class Scope(models.TextChoices):
        INGEST = "ingest", "Ingest events"
        READ = "read", "Read"
        WRITE = "write", "Write"

    ALL_SCOPES = (Scope.INGEST, Scope.READ, Scope.WRITE)

    name = models.CharField(max_length=100)
    prefix = models.CharField(
        max_length=16, db_index=True, help_text="The first characters of the key, to recognise it."
    )
    hashed_key = models.CharField(max_length=64, unique=True, editable=False)
    scopes = ArrayField(models.CharField(max_length=16, choices=Scope.choices), default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ApiAuditEntry(models.Model):
    """One API write: which key did what to which object, when. Append-only; read-only in the admin."""

    api_key = models.ForeignKey(ApiKey, null=True, on_delete=models.SET_NULL, related_name="audit_entries")
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    status_code = models.PositiveSmallIntegerField()
    object_ref = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = "API audit entry"
        verbose_name_plural = "API audit log"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status_code}"


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
        default=list, blank=True,
        help_text='Subscriptions whose billing failed: [{"subscription", "customer", "boundary", "error"}].',
    )
    summary = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        from .instants import format_instant

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
