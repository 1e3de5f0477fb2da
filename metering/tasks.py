"""Thin Celery wrappers around metering services."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime


@shared_task(name="metering.usage_rollup_refresh", acks_late=True, time_limit=1800)
def usage_rollup_refresh(now: str | None = None) -> int:
    """Fold newly arrived events into the hourly usage rollup (schedule it every few minutes)."""
    from .services import usage_rollup_refresh as refresh

    return refresh(now=parse_datetime(now) if now else timezone.now())
