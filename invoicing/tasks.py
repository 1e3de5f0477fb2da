"""Thin Celery wrappers: parse ids and an ISO ``now``, call one service.

The beat task ``invoicing.billing_run_execute`` fans out one ``invoicing.subscriptions_bill`` task per chunk
of due subscriptions, so more workers on more machines finish a large run sooner; each chunk is idempotent
(locks + ``invoice_unique_subscription_boundary``), so retries and double beats are safe. It then finalizes
drafts past their grace period and runs the wallets' scheduled work. Names are set explicitly because
django-celery-beat stores them in the database.
"""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from billing_project.models import BillingRun

from .services.run import (
    RunSummary,
    billing_run_record,
    drafts_finalize_due,
    due_subscription_ids,
    subscriptions_bill,
    wallet_work,
)

CHUNK_SIZE = 200
RETRY = {"autoretry_for": (OperationalError,), "retry_backoff": True, "retry_backoff_max": 300, "max_retries": 5}


def _now(value: str | None):
    return parse_datetime(value) if value else timezone.now()


@shared_task(name="invoicing.subscriptions_bill", acks_late=True, time_limit=900, soft_time_limit=840, **RETRY)
def subscriptions_bill_task(subscription_ids: list[int], now: str) -> str:
    """Catch up one chunk of subscriptions as of ``now`` (ISO 8601)."""
    summary = RunSummary(as_of=_now(now))
    subscriptions_bill(subscription_ids=subscription_ids, now=summary.as_of, summary=summary)
    if summary.failures:
        run = BillingRun.objects.create(as_of=summary.as_of, trigger="celery-chunk")
        billing_run_record(run=run, summary=summary)
    return summary.line()


@shared_task(name="invoicing.billing_run_execute", acks_late=True, time_limit=3600, soft_time_limit=3500, **RETRY)
def billing_run_task(now: str | None = None, customer_external_id: str | None = None) -> str:
    """Beat entry point: fan out the due subscriptions in chunks, then finalization and wallet work."""
    as_of = _now(now)
    run = BillingRun.objects.create(as_of=as_of, customer_external_id=customer_external_id or "", trigger="beat")
    summary = RunSummary(as_of=as_of)
    ids = due_subscription_ids(now=as_of, customer_external_id=customer_external_id)
    for i in range(0, len(ids), CHUNK_SIZE):
        subscriptions_bill_task.delay(ids[i : i + CHUNK_SIZE], as_of.isoformat())
    drafts_finalize_due(now=as_of, summary=summary, customer_external_id=customer_external_id)
    wallet_work(now=as_of, summary=summary, customer_external_id=customer_external_id)
    summary.boundaries = len(ids)  # subscriptions dispatched; their chunks bill every boundary due
    billing_run_record(run=run, summary=summary)
    return summary.line()
