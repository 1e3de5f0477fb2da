"""Thin Celery wrappers around metering services.

Like every task: acks_late + reject_on_worker_lost, explicit time limits, retried with backoff on database
errors. The rollup refresh is idempotent by its database state (it folds only hours not yet folded).
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError
from django.utils import timezone
from django.utils.dateparse import parse_datetime


@shared_task(
    name="metering.usage_rollup_refresh",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=1800,
    soft_time_limit=1740,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def usage_rollup_refresh(now: str | None = None) -> int:
    """Fold newly arrived events into the hourly usage rollup (schedule it every few minutes)."""
    from .services import usage_rollup_refresh as refresh

    return refresh(now=parse_datetime(now) if now else timezone.now())


@shared_task(
    name="metering.event_partitions_ensure",
    acks_late=True,
    reject_on_worker_lost=True,
    time_limit=1800,
    soft_time_limit=1740,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=True,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=5,
)
def event_partitions_ensure(now: str | None = None) -> list[str]:
    """Create the event table's monthly partitions ahead of time (schedule it daily)."""
    from .partitions import event_partitions_ensure as ensure

    return ensure(now=parse_datetime(now) if now else timezone.now())
