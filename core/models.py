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
