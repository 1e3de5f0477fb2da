"""Reads of webhook endpoints, deliveries, alerts and triggers (NotFound for unknown or malformed ids)."""

from __future__ import annotations

from django.db.models import QuerySet

from core.errors import NotFound
from core.models import WebhookDelivery, WebhookEndpoint

from .models import Alert, AlertTrigger


def _pk(value: object) -> int | None:
    text = str(value)
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def endpoint_list() -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.order_by("id")


def endpoint_get(*, endpoint_id: object) -> WebhookEndpoint:
    endpoint = WebhookEndpoint.objects.filter(pk=_pk(endpoint_id)).first() if _pk(endpoint_id) else None
    if endpoint is None:
        raise NotFound("Unknown webhook endpoint.")
    return endpoint


def delivery_list(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """Newest first."""
    return WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event").order_by("-id")


def alert_list(*, customer=None) -> QuerySet[Alert]:
    alerts = Alert.objects.select_related("customer", "meter").order_by("id")
    return alerts.filter(customer=customer) if customer is not None else alerts


def alert_get(*, alert_id: object) -> Alert:
    alert = alert_list().filter(pk=_pk(alert_id)).first() if _pk(alert_id) else None
    if alert is None:
        raise NotFound("Unknown alert.")
    return alert


def trigger_list(*, alert: Alert) -> QuerySet[AlertTrigger]:
    """Newest first."""
    return AlertTrigger.objects.filter(alert=alert).order_by("-triggered_at", "-threshold", "-id")


def customer_triggers_recent(*, customer, limit: int = 10) -> list[AlertTrigger]:
    """A customer's latest triggers across its alerts (the customer 360 page)."""
    return list(
        AlertTrigger.objects.filter(alert__customer=customer)
        .select_related("alert")
        .order_by("-triggered_at", "-threshold", "-id")[:limit]
    )
