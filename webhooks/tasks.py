"""Thin Celery wrappers for webhooks and alerts (names set explicitly: django-celery-beat stores them).

* ``webhooks.deliveries_send_due`` (beat, every minute; and enqueued after each commit that recorded events):
  sends every delivery due. Safe to run in several workers at once (claims skip locked rows); a worker killed
  mid-send leaves its deliveries to come due again when their lease ends.
* ``webhooks.alerts_evaluate`` (beat, every 5 minutes): evaluates every alert.
* ``webhooks.prune`` (beat, daily): deletes deliveries delivered more than 90 days ago and the events left without
  a delivery (``retention.py``; failed and pending deliveries are kept).
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from invoicing.services.run import as_of_parse

from . import alerts, retention, services

logger = logging.getLogger(__name__)
RELIABLE = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(name="webhooks.deliveries_send_due", time_limit=900, soft_time_limit=840, **RELIABLE)
def deliveries_send_due_task(now: str | None = None) -> str:
    return services.deliveries_send_due(now=as_of_parse(now)).line()


@shared_task(name="webhooks.alerts_evaluate", time_limit=900, soft_time_limit=840, **RELIABLE)
def alerts_evaluate_task(now: str | None = None) -> str:
    return alerts.alerts_evaluate(now=as_of_parse(now)).line()


@shared_task(name="webhooks.prune", time_limit=3600, soft_time_limit=3540, **RELIABLE)
def prune_task(now: str | None = None, older_than_days: int = retention.DEFAULT_DAYS) -> str:
    return retention.webhooks_prune(now=as_of_parse(now), older_than_days=older_than_days).line()


def send_soon() -> None:
    """Enqueue a send after a commit that recorded events. Without a broker (tasks run eagerly) nothing is sent
    inline, so a slow receiver never holds up the request or run that recorded the event: the beat task or
    ``manage.py deliver_webhooks`` sends it. A broker that is down loses nothing either: the rows are pending."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return
    try:
        deliveries_send_due_task.delay()
    except Exception:  # noqa: BLE001 -- the broker being away must not fail the committed change
        logger.warning("could not enqueue webhook sending; the beat task will send the pending deliveries")
