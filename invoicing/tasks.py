"""Thin Celery wrappers: parse ids and an ISO ``now``, call one service."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .services import billing_run_execute


def _now(value: str | None):
    return parse_datetime(value) if value else timezone.now()


@shared_task(name="invoicing.billing_run_execute", acks_late=True, time_limit=3600, soft_time_limit=3500)
def billing_run_task(now: str | None = None, customer_external_id: str | None = None) -> str:
    return billing_run_execute(now=_now(now), customer_external_id=customer_external_id).line()
