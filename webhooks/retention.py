"""Pruning old webhook events and deliveries (docs/webhooks.md "Retention"; docs/operations.md).

The outbox keeps every event and every delivery so that finance and engineers can see what was sent and resend
what failed; without pruning the two tables only grow. ``webhooks_prune`` deletes, older than a cutoff
(``now - older_than_days``, default 90 days):

* **delivered** deliveries whose ``delivered_at`` is before the cutoff;
* **failed** deliveries whose last try (else their creation) is before the cutoff, only when asked
  (``include_failed``): by default a failed delivery stays until someone resends or prunes it on purpose, and so
  does its event;
* **events** recorded before the cutoff that have no delivery left (a delivery keeps its event: the foreign key
  is protected, and a kept failed or pending delivery must still be able to send it).

Pending deliveries are never pruned, however old. Work goes in batches (``BATCH`` rows, one short transaction
each, so the sender is never blocked for long); each batch re-checks the rule in its ``DELETE`` (a delivery
resent in the meantime is pending again and stays). ``dry_run`` counts what would go and deletes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Coalesce

from core.errors import ValidationFailed
from core.models import OutboxEvent, WebhookDelivery

#: The default age, in days, past which delivered deliveries and their events are pruned.
DEFAULT_DAYS = 90
#: The longest retention the command takes (ten years), so a typo cannot overflow a date.
MAX_DAYS = 3650
#: Rows deleted per transaction.
BATCH = 5000

Progress = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class PruneSummary:
    cutoff: datetime
    deliveries: int
    events: int
    dry_run: bool

    def line(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return f"{verb} {self.deliveries} deliveries and {self.events} events recorded before {self.cutoff.isoformat()}"


def _prunable(cutoff: datetime, include_failed: bool) -> Q:
    rule = Q(status=WebhookDelivery.Status.DELIVERED, delivered_at__lt=cutoff)
    if include_failed:
        rule |= Q(status=WebhookDelivery.Status.FAILED, last_try__lt=cutoff)
    return rule


def _deliveries(cutoff: datetime, include_failed: bool):
    return WebhookDelivery.objects.annotate(last_try=Coalesce("last_attempt_at", "created_at")).filter(
        _prunable(cutoff, include_failed)
    )


def _orphan_events(cutoff: datetime):
    return OutboxEvent.objects.filter(created_at__lt=cutoff).exclude(
        Exists(WebhookDelivery.objects.filter(event=OuterRef("pk")))
    )


def webhooks_prune(
    *,
    now: datetime,
    older_than_days: int = DEFAULT_DAYS,
    include_failed: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> PruneSummary:
    """Delete old delivered (and, with ``include_failed``, failed) deliveries, then the old events left without
    a delivery (the module docstring has the rules). ``progress(what, done)`` after each batch."""
    if (
        isinstance(older_than_days, bool)
        or not isinstance(older_than_days, int)
        or not 1 <= older_than_days <= MAX_DAYS
    ):
        raise ValidationFailed(f"Must be a whole number of days from 1 to {MAX_DAYS}.", field="older_than_days")
    cutoff = now - timedelta(days=older_than_days)
    if dry_run:
        deliveries = _deliveries(cutoff, include_failed)
        kept = WebhookDelivery.objects.filter(event=OuterRef("pk")).exclude(pk__in=deliveries.values("pk"))
        events = OutboxEvent.objects.filter(created_at__lt=cutoff).exclude(Exists(kept))
        return PruneSummary(cutoff=cutoff, deliveries=deliveries.count(), events=events.count(), dry_run=True)
    deleted_deliveries = 0
    while True:
        with transaction.atomic():
            ids = list(_deliveries(cutoff, include_failed).order_by("id").values_list("id", flat=True)[:BATCH])
            if not ids:
                break
            # The rule again in the DELETE: a delivery resent since the SELECT is pending and stays.
            count, _ = _deliveries(cutoff, include_failed).filter(pk__in=ids).delete()
        deleted_deliveries += count
        if progress:
            progress("deliveries", deleted_deliveries)
    deleted_events = 0
    while True:
        with transaction.atomic():
            ids = list(_orphan_events(cutoff).order_by("id").values_list("id", flat=True)[:BATCH])
            if not ids:
                break
            count, _ = _orphan_events(cutoff).filter(pk__in=ids).delete()
        deleted_events += count
        if progress:
            progress("events", deleted_events)
    return PruneSummary(cutoff=cutoff, deliveries=deleted_deliveries, events=deleted_events, dry_run=False)
