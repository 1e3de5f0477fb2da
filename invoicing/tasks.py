"""Thin Celery wrappers: parse ids and an ISO ``now``, call one service.

The beat task ``invoicing.billing_run_execute`` fans out one ``invoicing.subscriptions_bill`` task per chunk
of due subscriptions, so more workers on more machines finish a large run sooner; each chunk is idempotent
(locks + ``invoice_unique_subscription_boundary``), so retries and double beats are safe. It then finalizes
drafts past their grace period and runs the wallets' scheduled work. ``invoicing.progressive_watch`` (every few
minutes) issues progressive invoices between runs. Names are set explicitly because
django-celery-beat stores them in the database.

Reliability (every task): ``acks_late`` + ``reject_on_worker_lost`` (a worker killed mid-task leaves the
message to be delivered again, not lost), explicit hard and soft time limits, and automatic retries with
exponential backoff on database errors (``OperationalError``, ``InterfaceError``: the database restarted or
the connection dropped). Retrying is safe because every write is idempotent by a database constraint, never
by an in-memory check: one invoice per subscription boundary (``invoice_unique_subscription_boundary``),
ledger rows unique per (wallet, idempotency key), and the subscription row locked and re-read before a
boundary is billed. A chunk whose subscriptions failed on a database error is retried as a whole; the
subscriptions it already billed are skipped by their state.

``BILLING_RUN_CHUNK_SIZE`` (env, default 200) sets how many subscriptions one chunk task bills.
"""

from __future__ import annotations

import os

from celery import shared_task
from django.db import InterfaceError, OperationalError

from invoicing.models import BillingRun
from webhooks.alerts import alerts_evaluate

from .services.backtest import backtest_run_execute
from .services.run import (
    RunSummary,
    as_of_parse,
    billing_run_record,
    drafts_finalize_due,
    due_subscription_ids,
    progressive_work,
    subscriptions_bill,
    wallet_work,
)

CHUNK_SIZE = int(os.environ.get("BILLING_RUN_CHUNK_SIZE", "200"))
DATABASE_ERRORS = (OperationalError, InterfaceError)
RELIABLE = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": DATABASE_ERRORS,
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}


def _database_failures(failures: list[str]) -> list[str]:
    """Failures recorded as ``"subscription N (customer X): <ExceptionType>: message"`` that were database errors."""
    names = {f": {cls.__name__}: " for cls in DATABASE_ERRORS}
    return [f for f in failures if any(name in f for name in names)]


@shared_task(name="invoicing.subscriptions_bill", time_limit=900, soft_time_limit=840, **RELIABLE)
def subscriptions_bill_task(subscription_ids: list[int], now: str) -> str:
    """Catch up one chunk of subscriptions as of ``now`` (ISO 8601, naive = UTC); retried whole on database errors."""
    summary = RunSummary(as_of=as_of_parse(now))
    subscriptions_bill(subscription_ids=subscription_ids, now=summary.as_of, summary=summary)
    if lost := _database_failures(summary.failures):
        raise OperationalError(f"database errors in {len(lost)} subscriptions; the chunk is retried: {lost[0]}")
    if summary.failures:
        run = BillingRun.objects.create(as_of=summary.as_of, trigger=BillingRun.CHUNK_TRIGGER)
        billing_run_record(run=run, summary=summary)
    return summary.line()


@shared_task(name="invoicing.billing_run_execute", time_limit=3600, soft_time_limit=3500, **RELIABLE)
def billing_run_task(now: str | None = None, customer_external_id: str | None = None) -> str:
    """Beat entry point: fan out the due subscriptions in chunks, then finalization and wallet work."""
    as_of = as_of_parse(now)
    run = BillingRun.objects.create(as_of=as_of, customer_external_id=customer_external_id or "", trigger="beat")
    summary = RunSummary(as_of=as_of)
    ids = due_subscription_ids(now=as_of, customer_external_id=customer_external_id)
    for i in range(0, len(ids), CHUNK_SIZE):
        subscriptions_bill_task.delay(ids[i : i + CHUNK_SIZE], as_of.isoformat())
    progressive_work(now=as_of, summary=summary, customer_external_id=customer_external_id)
    drafts_finalize_due(now=as_of, summary=summary, customer_external_id=customer_external_id)
    wallet_work(now=as_of, summary=summary, customer_external_id=customer_external_id)
    summary.failures += alerts_evaluate(now=as_of, customer_external_id=customer_external_id).failures
    summary.boundaries = len(ids)  # subscriptions dispatched; their chunks bill every boundary due
    billing_run_record(run=run, summary=summary)
    return summary.line()


@shared_task(name="invoicing.progressive_watch", time_limit=600, soft_time_limit=570, **RELIABLE)
def progressive_watch_task(now: str | None = None) -> str:
    """Frequent beat entry point: one pass of the progressive billing watch as of ``now`` (default: the real
    time). Safe to overlap with a billing run or another pass (locks + ``invoice_unique_progressive_crossing``)."""
    summary = RunSummary(as_of=as_of_parse(now))
    progressive_work(now=summary.as_of, summary=summary)
    if summary.failures:
        run = BillingRun.objects.create(as_of=summary.as_of, trigger="progressive")
        billing_run_record(run=run, summary=summary)
    return summary.line()


@shared_task(name="invoicing.backtest_run_execute", time_limit=1800, soft_time_limit=1700, **RELIABLE)
def backtest_run_task(run_id: int, now: str | None = None) -> str:
    """Run one admin-requested backtest (reads only; progress and result on its ``BacktestRun`` row)."""
    run = backtest_run_execute(run_id=run_id, now=as_of_parse(now))
    return f"backtest {run.pk}: {run.status}"
