"""Celery hardening: task options, retries on database errors, and beat schedules that survive restarts."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from celery import current_app
from django.core.management import call_command
from django.db import InterfaceError, OperationalError

from invoicing import tasks as invoicing_tasks
from invoicing.models import Invoice
from metering import tasks as metering_tasks
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.invoicing.helpers import start

ALL_TASKS = [
    invoicing_tasks.subscriptions_bill_task,
    invoicing_tasks.billing_run_task,
    metering_tasks.usage_rollup_refresh,
]


@pytest.mark.parametrize("task", ALL_TASKS, ids=lambda t: t.name)
def test_every_task_acks_late_survives_worker_loss_has_time_limits_and_retries_database_errors(task):
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
    assert task.time_limit and task.soft_time_limit and task.soft_time_limit < task.time_limit
    assert set(task.autoretry_for) == {OperationalError, InterfaceError}
    assert task.retry_backoff and task.max_retries == 5
    # Redis must not hand a running task to a second worker: the visibility timeout outlasts every task.
    assert current_app.conf.broker_transport_options["visibility_timeout"] > task.time_limit


@pytest.mark.django_db
def test_a_chunk_whose_database_went_away_is_retried_and_bills_each_boundary_once(monkeypatch):
    """The first attempt loses the database on the second subscription; the retry bills what is left, once."""
    from invoicing.services import boundary

    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("5"))
    subs = [start(CustomerFactory(), version.plan, datetime(2026, 1, 1, tzinfo=UTC)) for _ in range(3)]
    real = boundary.subscription_boundary_bill_locked
    failures = []

    def drops_once(*, subscription, now, context):
        if subscription.pk == subs[1].pk and not failures:
            failures.append(subscription.pk)
            raise OperationalError("server closed the connection unexpectedly")
        return real(subscription=subscription, now=now, context=context)

    monkeypatch.setattr(boundary, "subscription_boundary_bill_locked", drops_once)
    retries = []
    monkeypatch.setattr(
        invoicing_tasks.subscriptions_bill_task,
        "retry",
        lambda *a, **kw: retries.append(kw.get("exc")) or (_ for _ in ()).throw(kw["exc"]),
    )
    ids = [s.pk for s in subs]
    with pytest.raises(OperationalError, match="the chunk is retried"):
        invoicing_tasks.subscriptions_bill_task.run(ids, "2026-02-01T00:00:00+00:00")
    assert len(retries) == 1  # autoretry_for asked Celery to retry with backoff
    # First attempt: subscriptions 0 and 2 billed Feb 1; subscription 1 lost its boundary to the fault.
    assert [Invoice.objects.filter(subscription=s).count() for s in subs] == [2, 1, 2]
    invoicing_tasks.subscriptions_bill_task.run(ids, "2026-02-01T00:00:00+00:00")  # the retry
    # Jan 1 start invoice + Feb 1 boundary for each: 2 each, nothing billed twice.
    assert [Invoice.objects.filter(subscription=s).count() for s in subs] == [2, 2, 2]


@pytest.mark.django_db
def test_beat_restart_keeps_finance_edits_to_schedules():
    """``setup_periodic_tasks`` runs at every deploy (a restart): it upserts by name and keeps admin edits."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask
    from django_celery_beat.schedulers import DatabaseScheduler

    call_command("setup_periodic_tasks", stdout=io.StringIO())
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert {"Billing run (hourly)", "Usage rollup (every 5 minutes)"} <= names
    billing = PeriodicTask.objects.get(name="Billing run (hourly)")
    rollup = PeriodicTask.objects.get(name="Usage rollup (every 5 minutes)")
    # Finance edits in the admin: the billing run moves to 02:30 with a note; the rollup is paused.
    billing.crontab, _ = CrontabSchedule.objects.get_or_create(minute="30", hour="2", timezone="UTC")
    billing.description = "Moved to 02:30 by finance"
    billing.save()
    rollup.enabled = False
    rollup.save()

    out = io.StringIO()
    call_command("setup_periodic_tasks", stdout=out)  # the restart
    call_command("setup_periodic_tasks", stdout=out)  # and another
    billing.refresh_from_db()
    rollup.refresh_from_db()
    assert (billing.crontab.minute, billing.crontab.hour) == ("30", "2")
    assert billing.description == "Moved to 02:30 by finance"
    assert rollup.enabled is False
    assert PeriodicTask.objects.filter(name__in=names).count() == len(names)  # no duplicates
    assert "created" not in out.getvalue()

    # Beat itself (DatabaseScheduler) builds its entries from these rows after the restart.
    entry = DatabaseScheduler.Entry(PeriodicTask.objects.get(name="Billing run (hourly)"), app=current_app)
    assert "Usage rollup (every 5 minutes)" not in {t.name for t in DatabaseScheduler.Model.objects.enabled()}
    assert entry.task == "invoicing.billing_run_execute"
    assert entry.schedule.minute == {30} and entry.schedule.hour == {2}
