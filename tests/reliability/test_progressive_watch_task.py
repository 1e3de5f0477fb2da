"""The progressive billing watch as a beat task: its schedule, its reliability options, and a real worker running
it (Redis broker, tests/celery_support.py)."""

from __future__ import annotations

import io
import time
from decimal import Decimal

import pytest
from django.core.management import call_command

from invoicing.models import Invoice
from invoicing.tasks import progressive_watch_task
from tests.factories.customers import CustomerFactory
from tests.invoicing.helpers import start, utc
from tests.invoicing.test_progressive import progressive_plan, use


def test_watch_task_is_reliable_like_the_others():
    from django.db import InterfaceError, OperationalError

    assert progressive_watch_task.name == "invoicing.progressive_watch"
    assert progressive_watch_task.acks_late and progressive_watch_task.reject_on_worker_lost
    assert progressive_watch_task.soft_time_limit < progressive_watch_task.time_limit
    assert set(progressive_watch_task.autoretry_for) == {OperationalError, InterfaceError}


@pytest.mark.django_db
def test_watch_is_scheduled_every_five_minutes_and_editable():
    from django_celery_beat.models import PeriodicTask

    call_command("setup_periodic_tasks", stdout=io.StringIO())
    task = PeriodicTask.objects.get(name="Progressive billing watch (every 5 minutes)")
    assert (task.task, task.crontab.minute, task.crontab.hour) == ("invoicing.progressive_watch", "*/5", "*")


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_watch(celery_worker):
    version, meter = progressive_plan([("200.00", False)])
    sub = start(CustomerFactory(external_id="worker-gpu"), version.plan, utc(2022, 12, 1))
    use(sub.customer, meter, 1_000_000, utc(2022, 12, 6, 9), "a")
    progressive_watch_task.delay(now="2022-12-06T10:00:00+00:00")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not Invoice.objects.filter(reason=Invoice.Reason.PROGRESSIVE).exists():
        time.sleep(0.2)
    # 1,000,000 x 0.0002 = 200.00 reaches the 200.00 threshold: one progressive invoice of 200.00.
    [invoice] = Invoice.objects.filter(subscription=sub, reason=Invoice.Reason.PROGRESSIVE)
    assert invoice.total == Decimal("200.00")
