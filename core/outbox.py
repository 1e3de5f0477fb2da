"""The transactional outbox: ``record_event`` writes an event in the caller's transaction.

Services of any app call it, in one line, where they make the change the event reports
(``record_event("customer.created", customer)`` in ``customer_create``...). The event and one pending delivery
per enabled endpoint that listens to its type are inserted in that transaction, so none is sent for a change
that rolls back and none is lost for one that commits.

The apps above (``webhooks``) configure, once at start-up (``AppConfig.ready``, so in every process), how an
object becomes the event's ``data`` -- the object as the API shows it -- and what runs after a commit that
recorded events (a Celery task that sends them; the beat task sends whatever is due anyway). A lower app thus
records events without importing any app above it.

Cost: with no endpoint listening to the type, one indexed query and nothing else (``data`` is built only when
someone listens, so a billing run with no endpoints serializes nothing). Work that records events by the
thousand (an invoice run) reads the endpoints once per batch instead, and asks per event only when one of them
listens to its type (``outbox_listeners_snapshot``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

EVENT_TYPES = (
    "customer.created",
    "subscription.started",
    "subscription.changed",
    "subscription.ended",
    "invoice.created",
    "invoice.finalized",
    "invoice.paid",
    "invoice.voided",
    "credit_note.created",
    "wallet.low_balance",
    "wallet.topped_up",
    "credits.expired",
    "alert.triggered",
)
ALL_EVENTS = "*"

#: ``represent(event_type, obj, extra) -> data``; ``send()`` after a commit that recorded events.
Represent = Callable[[str, Any, Mapping[str, Any]], Mapping[str, Any]]
_config: dict[str, Any] = {"represent": None, "send": None}


def outbox_configure(*, represent: Represent, send: Callable[[], None]) -> None:
    """Set how objects become event data and what runs after a commit (the webhooks app, at start-up)."""
    _config.update(represent=represent, send=send)


def _after_commit() -> None:
    if _config["send"] is not None:
        _config["send"]()


def _data(event_type: str, obj: Any, extra: Mapping[str, Any]) -> dict[str, Any]:
    represent = _config["represent"]
    if represent is None:  # no app configured the outbox: the object's id is all it can say
        return {"id": str(obj.pk), **extra}
    return dict(represent(event_type, obj, extra))


class ListenerSnapshot:
    """The enabled endpoints and the event types each listens to, read at first use and kept until ``forget``."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: list[tuple[int, list[str]]] | None = None

    def forget(self) -> None:
        """Read the endpoints again at the next event (a run calls it at each new batch)."""
        self._rows = None

    def anyone_listens(self, event_type: str) -> bool:
        if self._rows is None:
            from .models import WebhookEndpoint

            self._rows = list(WebhookEndpoint.objects.filter(enabled=True).order_by("id").values_list("id", "events"))
        return any(event_type in events or ALL_EVENTS in events for _pk, events in self._rows)


_snapshot: ContextVar[ListenerSnapshot | None] = ContextVar("outbox_listener_snapshot", default=None)


@contextmanager
def outbox_listeners_snapshot() -> Iterator[ListenerSnapshot]:
    """Inside the block, ``record_event`` reads the enabled endpoints once (at its first event, and again after
    each ``forget()``); an event type none of them listens to then costs no query at all. When one listens, the
    endpoints are read again exactly, as outside the block (a deleted or disabled endpoint gets nothing).

    For work recording events by the thousand (an invoice run: two per invoice). Rule: an endpoint created,
    enabled or subscribed to more types while the block runs counts from the next ``forget()`` (an invoice run
    forgets at each batch of subscriptions), not from the very next event.
    """
    snapshot = ListenerSnapshot()
    token = _snapshot.set(snapshot)
    try:
        yield snapshot
    finally:
        _snapshot.reset(token)


def _listening(event_type: str) -> list[int]:
    snapshot = _snapshot.get()
    if snapshot is not None and not snapshot.anyone_listens(event_type):
        return []
    from .models import WebhookEndpoint

    return list(
        WebhookEndpoint.objects.filter(Q(events__contains=[event_type]) | Q(events__contains=[ALL_EVENTS]))
        .filter(enabled=True)
        .values_list("id", flat=True)
    )


def record_event(event_type: str, obj: Any, **extra: Any) -> int | None:
    """Record ``event_type`` about ``obj`` in the caller's transaction; returns the event id, or None when no
    enabled endpoint listens to the type (nothing is written then).

    ``extra``: what the event adds to the object (``credits`` expired, the ``grant`` bought...). Call inside
    the transaction that makes the change, after the change (``data`` shows the object as it is then).
    """
    from .models import OutboxEvent, WebhookDelivery

    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    endpoints = _listening(event_type)
    if not endpoints:
        return None
    now = timezone.now()
    event = OutboxEvent.objects.create(
        uuid=uuid.uuid4(), type=event_type, data=_data(event_type, obj, extra), created_at=now
    )
    WebhookDelivery.objects.bulk_create(
        [WebhookDelivery(event=event, endpoint_id=pk, next_attempt_at=now) for pk in endpoints]
    )
    connection = transaction.get_connection()
    if not any(func is _after_commit for _sids, func, _robust in connection.run_on_commit):
        transaction.on_commit(_after_commit)  # once per transaction, however many events it records
    return event.pk
