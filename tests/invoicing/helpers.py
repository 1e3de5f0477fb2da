"""Shared helpers for invoicing tests."""

from __future__ import annotations

from datetime import UTC, datetime

from customers.models import Subscription
from invoicing.models import Invoice
from invoicing.services import subscription_start


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def start(customer, plan, at, *, billing="calendar", pinned_version=None, now=None) -> Subscription:
    return subscription_start(
        customer=customer, plan=plan, start_at=at, billing=billing, pinned_version=pinned_version, now=now or at
    )


def invoices_of(subscription) -> list[Invoice]:
    return list(Invoice.objects.filter(subscription=subscription).order_by("billing_boundary_at"))
