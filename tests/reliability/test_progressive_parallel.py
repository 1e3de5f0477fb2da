"""Progressive billing under parallel runs, with real threads and real locks (one connection each): watches and
billing runs evaluating the same crossings at once issue one progressive invoice per crossing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from invoicing.models import Invoice
from invoicing.services import billing_run_execute
from invoicing.services.progressive import progressive_watch
from tests.factories.customers import CustomerFactory
from tests.invoicing.helpers import start, utc
from tests.invoicing.test_progressive import progressive_plan, use

from .conftest import race


@pytest.mark.django_db(transaction=True)
def test_parallel_watches_and_runs_issue_one_invoice_per_crossing():
    version, meter = progressive_plan([("2.00", False), ("10.00", True)])
    subs = [start(CustomerFactory(external_id=f"par-{i}"), version.plan, utc(2022, 12, 1)) for i in range(3)]
    for i, sub in enumerate(subs):
        # 60,000 units x 0.0002 = 12.00: reaches 2 and 12 (2 + 10) together, one crossing each.
        use(sub.customer, meter, 60_000, utc(2022, 12, 5), f"par-{i}")
    now = utc(2022, 12, 6)
    results = race(
        lambda: progressive_watch(now=now),
        lambda: progressive_watch(now=now),
        lambda: billing_run_execute(now=now),
        lambda: billing_run_execute(now=now),
    )
    assert not [r for r in results if isinstance(r, BaseException)], results
    for sub in subs:
        [invoice] = Invoice.objects.filter(subscription=sub, reason=Invoice.Reason.PROGRESSIVE)
        # One invoice for the crossing (first level 2, reached 12), billing 12.00.
        assert (invoice.progressive_threshold, invoice.progressive_threshold_reached) == (Decimal(2), Decimal(12))
        assert invoice.total == Decimal("12.00")
    numbers = sorted(
        int(n.split("-")[-1])
        for n in Invoice.objects.filter(reason=Invoice.Reason.PROGRESSIVE).values_list("number", flat=True)
    )
    assert len(numbers) == 3 and numbers == list(range(numbers[0], numbers[0] + 3))  # gapless


@pytest.mark.django_db(transaction=True)
def test_parallel_evaluations_of_the_next_crossing_after_more_usage():
    version, meter = progressive_plan([("2.00", False), ("10.00", True)])
    sub = start(CustomerFactory(external_id="more"), version.plan, utc(2022, 12, 1))
    use(sub.customer, meter, 15_000, utc(2022, 12, 2), "m1")
    progressive_watch(now=utc(2022, 12, 3))  # 3.00 reaches 2: bills 3.00
    use(sub.customer, meter, 60_000, utc(2022, 12, 4), "m2")
    now = utc(2022, 12, 5)
    results = race(*(lambda: progressive_watch(now=now) for _ in range(4)))
    assert not [r for r in results if isinstance(r, BaseException)], results
    # 75,000 units = 15.00 reaches 12: one more invoice for 15.00 - 3.00 = 12.00, however many watches ran.
    totals = list(
        Invoice.objects.filter(subscription=sub, reason=Invoice.Reason.PROGRESSIVE)
        .order_by("id")
        .values_list("total", flat=True)
    )
    assert totals == [Decimal("3.00"), Decimal("12.00")]
    assert sum(len(r.invoices) for r in results) == 1
