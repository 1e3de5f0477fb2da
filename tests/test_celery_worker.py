"""The beat task through a real Celery worker on Redis: fan-out, billing and the run record."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from invoicing.models import BillingRun, Invoice
from invoicing.services import subscription_start
from invoicing.tasks import billing_run_task
from tests.factories.catalog import PlanFactory, PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory


@pytest.mark.django_db(transaction=True)
def test_beat_task_fans_out_through_a_real_worker_and_bills_each_period_once(celery_worker):
    plan = PlanFactory(key="basic")
    version = PlanVersionFactory(plan=plan, number=1, published=True)
    PriceFactory(plan_version=version, amount=Decimal("10.00"))  # $10.00 a month, in advance
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(3):
        subscription_start(
            customer=CustomerFactory(external_id=f"c{i}"),
            plan=plan,
            start_at=start,
            billing="calendar",
            pinned_version=None,
            now=start,
        )
    assert Invoice.objects.count() == 3  # the Jan 1 in-advance invoices

    # The beat task, sent through Redis: as of Mar 1 each subscription owes the Feb 1 and Mar 1 boundaries.
    billing_run_task.delay(now="2026-03-01T00:00:00+00:00")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and Invoice.objects.count() < 9:
        time.sleep(0.2)
    # 3 subscriptions x (Jan 1 + Feb 1 + Mar 1) = 9 invoices of $10.00, numbered 1..9 without a gap
    assert Invoice.objects.count() == 9
    assert sorted(Invoice.objects.values_list("total", flat=True)) == [Decimal("10.00")] * 9
    numbers = sorted(int(n.split("-")[1]) for n in Invoice.objects.values_list("number", flat=True))
    assert numbers == list(range(1, 10))
    run = BillingRun.objects.get(trigger="beat")
    assert run.as_of == datetime(2026, 3, 1, tzinfo=UTC) and run.finished_at is not None

    # A second beat at the same instant bills nothing new.
    billing_run_task.delay(now="2026-03-01T00:00:00+00:00")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and BillingRun.objects.filter(trigger="beat").count() < 2:
        time.sleep(0.2)
    time.sleep(1)
    assert Invoice.objects.count() == 9
