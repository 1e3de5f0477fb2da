"""Platform rows: API keys, the API audit trail and the record of billing runs."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.core.serializers.json import DjangoJSONEncoder
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


# --- Webhooks: the outbox and who receives it (docs/webhooks.md) ------------------------------------------------
# At the bottom, so that every app's services can record an event in the transaction of its change
# (``core.outbox.record_event``); sending, signing, retries, the API and the admin are the ``webhooks`` app's.


class WebhookEndpoint(models.Model):
    """A URL that receives events. ``events``: event types, or ``["*"]`` for all.

    ``secret`` signs every delivery (``whsec_`` + base64 of 24 random bytes), shown once at creation. Rolling it
    keeps the old one valid until ``previous_secret_expires_at`` (24 h): deliveries carry both signatures.
    """

    url = models.URLField(max_length=2000)
    events = ArrayField(models.CharField(max_length=64), default=list)
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=500, blank=True)
    secret = models.CharField(max_length=100, editable=False)
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "webhook endpoint"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.url


class OutboxEvent(models.Model):
    """One event (``customer.created``, ``invoice.paid``...), written in the transaction of the change it
    reports, so a rolled-back change leaves none. ``data`` is the object as the API showed it then.
    Append-only: deliveries refer to it; it is never updated."""

    uuid = models.UUIDField(unique=True, editable=False)
    type = models.CharField(max_length=64, db_index=True)
    data = models.JSONField(encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "webhook event"
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk}"

    @property
    def webhook_id(self) -> str:
        """The ``webhook-id`` header: the same on every try of every delivery of this event."""
        return f"msg_{self.uuid.hex}"


class WebhookDelivery(models.Model):
    """One event to one endpoint: tried until a 2xx answer (``delivered``) or the retry schedule runs out
    (``failed``). ``next_attempt_at`` is when it is due (a try in progress holds it a lease ahead)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    event = models.ForeignKey(OutboxEvent, on_delete=models.PROTECT, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(
        max_length=200, blank=True, help_text="Why the last try failed (timeout, refused...), without internals."
    )
    last_response = models.CharField(max_length=500, blank=True, help_text="The start of the last answer's body.")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="webhookdelivery_unique_event_endpoint"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="webhookdelivery_due",
                condition=models.Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event.type} -> {self.endpoint.url}"
