"""Webhook endpoints and deliveries: create, change, roll a secret; send what is due; resend.

Sending (:func:`deliveries_send_due`), at least once:

1. **Claim** due deliveries in a short transaction (``FOR UPDATE SKIP LOCKED``, so two workers never take the
   same one): each gets ``attempts + 1`` and ``next_attempt_at`` a lease ahead (``LEASE``). No transaction is
   open while HTTP runs.
2. **Send**, one thread per endpoint (``WEBHOOKS_SEND_THREADS`` at a time): a slow or dead receiver holds its
   own thread until the timeout and delays no other endpoint. Once an endpoint gave no answer, the rest of its
   batch is given back untried (it waits for the next round, with its try not counted).
3. **Record** each answer as it comes: a 2xx delivers; anything else schedules the next try
   (``retry.retry_delay``) or, after the last, marks the delivery ``failed``.

A worker killed between 1 and 3 leaves the delivery ``pending`` with its lease: it is due again when the lease
runs out, and sent with the same ``webhook-id`` (receivers deduplicate on it).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F

from core.errors import ValidationFailed
from core.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from core.outbox import ALL_EVENTS, EVENT_TYPES

from . import network, signing
from .retry import retry_delay

ROLLED_SECRET_VALID = timedelta(hours=24)
#: How long a claimed delivery is held by the worker trying it. A worker sends one endpoint's share of a batch
#: for at most ``SEND_BUDGET`` and gives the rest back (due at once), so a lease never runs out mid-batch.
LEASE = timedelta(minutes=5)
SEND_BUDGET = timedelta(minutes=2)
BATCH_SIZE = 100
LATER = object()  # "not tried: the batch's time budget ran out"
Status = WebhookDelivery.Status


def _timeout() -> float:
    return float(getattr(settings, "WEBHOOKS_TIMEOUT_SECONDS", 10))


def _threads() -> int:
    return int(getattr(settings, "WEBHOOKS_SEND_THREADS", 8))


# --- endpoints -------------------------------------------------------------------------------------------------


def endpoint_events_check(events: Iterable[str]) -> list[str]:
    """The event types as stored (``["*"]`` alone when ``*`` is among them); 400 ``events`` when empty or unknown."""
    events = list(dict.fromkeys(events))
    if not events:
        raise ValidationFailed('List the event types to receive, or ["*"] for all.', field="events")
    unknown = [e for e in events if e != ALL_EVENTS and e not in EVENT_TYPES]
    if unknown:
        raise ValidationFailed(
            f"Unknown event type(s): {', '.join(unknown)}. Known: {', '.join(EVENT_TYPES)}, or *.", field="events"
        )
    return [ALL_EVENTS] if ALL_EVENTS in events else events


def endpoint_url_check(url: str) -> str:
    """``url`` when webhooks may go there (``network``'s rules); else 400 ``url`` saying why."""
    try:
        network.endpoint_url_check(url)
    except network.UnsafeUrl as exc:
        raise ValidationFailed(str(exc), field="url") from None
    return url


@transaction.atomic(savepoint=False)
def endpoint_create_in_transaction(
    *, url: str, events: Iterable[str], enabled: bool = True, description: str = ""
) -> WebhookEndpoint:
    """:func:`endpoint_create` inside the caller's transaction (the admin's)."""
    return WebhookEndpoint.objects.create(
        url=endpoint_url_check(url),
        events=endpoint_events_check(events),
        enabled=enabled,
        description=description,
        secret=signing.secret_new(),
    )


@transaction.atomic(durable=True)
def endpoint_create(*, url: str, events: Iterable[str], enabled: bool = True, description: str = "") -> WebhookEndpoint:
    """A new endpoint with a new secret (``endpoint.secret``: show it once). 400 ``url`` (not http(s), or a
    private address: ``network``), 400 ``events`` (empty or unknown types; ``*`` alone stands for all)."""
    return endpoint_create_in_transaction(url=url, events=events, enabled=enabled, description=description)


@transaction.atomic(durable=True)
def endpoint_update(*, endpoint: WebhookEndpoint, data: dict[str, Any]) -> WebhookEndpoint:
    """PATCH semantics: only the keys present change; the same checks as at creation."""
    return endpoint_update_in_transaction(endpoint=endpoint, data=data)


@transaction.atomic(savepoint=False)
def endpoint_update_in_transaction(*, endpoint: WebhookEndpoint, data: dict[str, Any]) -> WebhookEndpoint:
    """:func:`endpoint_update` inside the caller's transaction (the admin's)."""
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if "url" in data:
        locked.url = endpoint_url_check(data["url"])
    if "events" in data:
        locked.events = endpoint_events_check(data["events"])
    for name in ("enabled", "description"):
        if name in data:
            setattr(locked, name, data[name])
    locked.save()
    return locked


@transaction.atomic(durable=True)
def endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint and its delivery log (the events stay)."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).delete()


@transaction.atomic(savepoint=False)
def endpoint_secret_roll(*, endpoint: WebhookEndpoint, now: datetime) -> WebhookEndpoint:
    """A new secret (show it once); the old one stays valid ``ROLLED_SECRET_VALID`` (24 h): deliveries until then
    carry both signatures, so receivers can switch without missing one."""
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    locked.previous_secret = locked.secret
    locked.previous_secret_expires_at = now + ROLLED_SECRET_VALID
    locked.secret = signing.secret_new()
    locked.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at", "updated_at"])
    return locked


def endpoint_secrets(endpoint: WebhookEndpoint, *, at: datetime) -> list[str]:
    """The secrets a delivery is signed with at ``at``: the current one, and the rolled one while it is valid."""
    found = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and endpoint.previous_secret_expires_at > at:
        found.append(endpoint.previous_secret)
    return found


# --- the message ----------------------------------------------------------------------------------------------


def event_body(event: OutboxEvent) -> bytes:
    """The JSON body: ``{"type", "timestamp", "data"}`` (timestamp: when the event happened, ISO 8601 UTC)."""
    payload = {
        "type": event.type,
        "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": event.data,
    }
    return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def delivery_headers(delivery: WebhookDelivery, *, body: bytes, at: datetime, timestamp: int) -> dict[str, str]:
    msg_id = delivery.event.webhook_id
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.signature_header(
            secrets_=endpoint_secrets(delivery.endpoint, at=at), msg_id=msg_id, timestamp=timestamp, body=body
        ),
    }


# --- sending --------------------------------------------------------------------------------------------------


@dataclass
class SendSummary:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    released: int = 0
    endpoints: set[int] = field(default_factory=set)

    @property
    def tried(self) -> int:
        return self.delivered + self.retrying + self.failed

    def line(self) -> str:
        return (
            f"tried={self.tried} delivered={self.delivered} retrying={self.retrying} failed={self.failed} "
            f"postponed={self.released}"
        )


def _claim(*, now: datetime, limit: int) -> list[WebhookDelivery]:
    with transaction.atomic():
        ids = list(
            WebhookDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
            .order_by("next_attempt_at", "id")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        WebhookDelivery.objects.filter(pk__in=ids).update(attempts=F("attempts") + 1, next_attempt_at=now + LEASE)
    return list(
        WebhookDelivery.objects.filter(pk__in=ids).select_related("event", "endpoint").order_by("next_attempt_at", "id")
    )


def _record(delivery: WebhookDelivery, answer: network.Answer, *, now: datetime, rand: float) -> str:
    """Write one try's outcome; returns the delivery's new status (``retrying`` while it stays pending)."""
    changes: dict[str, Any] = {
        "last_attempt_at": now,
        "last_status_code": answer.status,
        "last_response": answer.body,
        "last_error": answer.error,
    }
    if answer.ok:
        changes.update(status=Status.DELIVERED, delivered_at=now, next_attempt_at=None)
        outcome = "delivered"
    elif (wait := retry_delay(delivery.attempts, rand=rand)) is None:
        changes.update(status=Status.FAILED, next_attempt_at=None)
        outcome = "failed"
    else:
        changes.update(next_attempt_at=now + wait)
        outcome = "retrying"
    # Only while it is still this try's: a resend from the admin meanwhile wins.
    WebhookDelivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts, status=Status.PENDING).update(**changes)
    return outcome


def _record_delivered(results: list[tuple[WebhookDelivery, network.Answer]], *, now: datetime) -> int:
    """Write the 2xx answers of a batch: one UPDATE per distinct (tries, status code, body), usually one."""
    groups: dict[tuple[int, int | None, str], list[int]] = {}
    for delivery, answer in results:
        groups.setdefault((delivery.attempts, answer.status, answer.body), []).append(delivery.pk)
    for (attempts, code, body), ids in groups.items():
        WebhookDelivery.objects.filter(pk__in=ids, attempts=attempts, status=Status.PENDING).update(
            status=Status.DELIVERED,
            delivered_at=now,
            next_attempt_at=None,
            last_attempt_at=now,
            last_status_code=code,
            last_response=body,
            last_error="",
        )
    return len(results)


def _release(deliveries: list[WebhookDelivery], *, now: datetime) -> None:
    """Give claimed deliveries back untried, due at ``now``, their try not counted."""
    for delivery in deliveries:
        WebhookDelivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts, status=Status.PENDING).update(
            attempts=F("attempts") - 1, next_attempt_at=now
        )


def _send_endpoint_batch(deliveries: list[WebhookDelivery], now: datetime) -> list[tuple[WebhookDelivery, Any]]:
    """Send one endpoint's share of a batch in order (runs in a worker thread; no database access here).

    Returns ``(delivery, answer)`` per try, then ``(delivery, None)`` for those not tried because the endpoint
    gave no answer to an earlier one, or ``(delivery, LATER)`` once the batch used its time budget."""
    done: list[tuple[WebhookDelivery, Any]] = []
    deadline = time.monotonic() + SEND_BUDGET.total_seconds()
    for i, delivery in enumerate(deliveries):
        if i and time.monotonic() > deadline:  # the first is always tried: every round makes progress
            done += [(rest, LATER) for rest in deliveries[i:]]
            break
        body = event_body(delivery.event)
        headers = delivery_headers(delivery, body=body, at=now, timestamp=int(time.time()))
        answer = network.post(delivery.endpoint.url, body=body, headers=headers, timeout=_timeout())
        done.append((delivery, answer))
        if answer.status is None:
            done += [(rest, None) for rest in deliveries[i + 1 :]]
            break
    return done


def deliveries_send_due(
    *, now: datetime, limit: int | None = None, progress: Callable[[int], None] | None = None
) -> SendSummary:
    """Send every pending delivery due at or before ``now``, in batches, until none is due (or ``limit`` tries).

    Never raises for a receiver's trouble; safe to run in several workers at once (claims skip locked rows).
    """
    summary = SendSummary()
    rng = random.SystemRandom()
    while limit is None or summary.tried < limit:
        batch = _claim(now=now, limit=min(BATCH_SIZE, limit - summary.tried) if limit else BATCH_SIZE)
        if not batch:
            break
        by_endpoint: dict[int, list[WebhookDelivery]] = {}
        for delivery in batch:
            by_endpoint.setdefault(delivery.endpoint_id, []).append(delivery)
        summary.endpoints |= set(by_endpoint)
        with ThreadPoolExecutor(max_workers=max(1, min(_threads(), len(by_endpoint)))) as pool:
            futures = [pool.submit(_send_endpoint_batch, group, now) for group in by_endpoint.values()]
            for future in as_completed(futures):
                untried, delivered, later = [], [], []
                for delivery, answer in future.result():
                    if answer is None:
                        untried.append(delivery)
                    elif answer is LATER:
                        later.append(delivery)
                    elif answer.ok:
                        delivered.append((delivery, answer))
                    else:
                        outcome = _record(delivery, answer, now=now, rand=rng.random())
                        setattr(summary, outcome, getattr(summary, outcome) + 1)
                summary.delivered += _record_delivered(delivered, now=now)
                if untried:  # the endpoint gave no answer: the rest waits for the next round
                    _release(untried, now=now + LEASE)
                    summary.released += len(untried)
                if later:  # out of time, not out of luck: due again at once, for this loop or another worker
                    _release(later, now=now)
                if progress:
                    progress(summary.tried)
    return summary


# --- resend ---------------------------------------------------------------------------------------------------


@transaction.atomic(savepoint=False)
def delivery_resend(*, delivery: WebhookDelivery, now: datetime) -> WebhookDelivery:
    """Send a delivery again (delivered or failed): pending, due now, a fresh retry schedule, same ``webhook-id``."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=Status.PENDING, attempts=0, next_attempt_at=now, delivered_at=None
    )
    delivery.refresh_from_db()
    return delivery


@transaction.atomic(savepoint=False)
def deliveries_resend_failed(*, endpoint: WebhookEndpoint | None = None, now: datetime) -> int:
    """Every ``failed`` delivery (of ``endpoint``, or of all) again, as :func:`delivery_resend`. Returns how many."""
    failed = WebhookDelivery.objects.filter(status=Status.FAILED)
    if endpoint is not None:
        failed = failed.filter(endpoint=endpoint)
    return failed.update(status=Status.PENDING, attempts=0, next_attempt_at=now)
