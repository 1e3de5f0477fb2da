"""Parallel runs share the work: a run skips a customer another transaction holds and comes back to it."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection, transaction

from customers.models import Customer
from invoicing.models import Invoice
from invoicing.services.run import RunSummary, subscriptions_bill
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory

from .helpers import invoices_of, start, utc

FEB1 = utc(2026, 2, 1)


@pytest.mark.django_db(transaction=True)
def test_run_bills_other_customers_first_while_one_is_locked_then_bills_it_once():
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, amount=Decimal("7"))
    held = start(CustomerFactory(external_id="held"), version.plan, utc(2026, 1, 1))
    free = [start(CustomerFactory(), version.plan, utc(2026, 1, 1)) for _ in range(3)]
    locked, release = threading.Event(), threading.Event()
    seen_while_locked: list[int] = []
    summary = RunSummary(as_of=FEB1)
    errors: list[BaseException] = []

    def holder():  # another transaction on the customer (an API write, a parallel run...)
        try:
            with transaction.atomic():
                Customer.objects.select_for_update().get(external_id="held")
                locked.set()
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    n = Invoice.objects.filter(billing_boundary_at=FEB1).count()
                    if n == len(free):
                        break
                    time.sleep(0.05)
                seen_while_locked.append(Invoice.objects.filter(billing_boundary_at=FEB1).count())
                release.wait(0.2)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    def runner():
        try:
            locked.wait(10)
            # The held customer's subscription comes first in the list, as the oldest boundary would.
            subscriptions_bill(subscription_ids=[held.pk] + [s.pk for s in free], now=FEB1, summary=summary)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=holder), threading.Thread(target=runner)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    # The three free customers were billed while the first one was still locked (no queueing behind it)...
    assert seen_while_locked == [3]
    # ...and the held one was billed after, once: 4 boundaries, 4 invoices, numbers 1..4 after the 4 starts.
    assert (summary.boundaries, summary.invoices_created, summary.failures) == (4, 4, [])
    assert [i.billing_boundary_at for i in invoices_of(held)] == [utc(2026, 1, 1), FEB1]
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == [f"INV-{n:06d}" for n in range(1, 9)]
