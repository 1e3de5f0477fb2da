"""Fault: a Celery worker is killed (SIGKILL of the main process and its pool) in the middle of an invoice run.

Setup: 40 subscriptions (calendar, started 2026-01-01) on one plan: a $10.00 monthly fee in advance, $1.00
per API call in arrears, and 3 plan credits per period (1 credit = $1.00; no rollover: unused credits
expire at the period's end). Each customer sends 5 calls in January and 2 in February. Billing "as of"
2026-03-01 has two boundaries due per subscription (Feb 1 and Mar 1) = 80 invoices to create.

The run is started through a real worker on Redis (beat task -> chunks of 4 subscriptions); the worker is
killed once some but not all of the 80 invoices exist. Then the run happens again: a new worker takes the
beat task (and whatever the dead worker left in the queue), and finally the run is done once more
in-process. What must hold:

- every due period billed exactly once: 3 invoices per subscription (Jan 1, Feb 1, Mar 1), 120 in all;
- the totals by hand: Jan 1 = $10 fee; Feb 1 = 5 calls x $1 + $10 = $15; Mar 1 = 2 calls x $1 + $10 = $12;
  40 x ($10 + $15 + $12) = $1,480.00;
- 3 plan grants per wallet (one per period), and ledger == balance == lots for every wallet;
- invoice numbers are gapless: sorted, they are exactly 1..120.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db.models import Count, Sum

from catalog.models import Price
from customers.models import Subscription
from invoicing.models import Invoice
from invoicing.services import billing_run_execute
from metering.models import Event
from tests.factories.catalog import PlanCreditGrantFactory, PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.factories.metering import MeterFactory
from tests.invoicing.helpers import start
from wallets.models import CreditGrant, Wallet
from wallets.selectors import wallet_ledger_check

SUBSCRIPTIONS = 40
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


def _catalog_and_subscriptions() -> list[Subscription]:
    version = PlanVersionFactory(published=True, number=1)
    meter = MeterFactory(key="calls", event_name="api_call")
    PriceFactory(plan_version=version, name="Platform fee", amount=Decimal("10.00"), position=0)
    PriceFactory(
        plan_version=version,
        name="API calls",
        model=Price.Model.PER_UNIT,
        timing=Price.Timing.IN_ARREARS,
        amount=None,
        unit_amount=Decimal("1.00"),
        meter=meter,
        position=1,
    )
    PlanCreditGrantFactory(plan_version=version, credits=Decimal("3"), rollover_cap=Decimal("0"))
    subscriptions = []
    events = []
    for n in range(SUBSCRIPTIONS):
        customer = CustomerFactory(external_id=f"kill-{n:03d}")
        subscriptions.append(start(customer, version.plan, datetime(2026, 1, 1, tzinfo=UTC)))
        for i, day in enumerate([3, 5, 7, 9, 11] + [33, 40]):  # 5 calls in January, 2 in February
            events.append(
                Event(
                    customer_external_id=customer.external_id,
                    event_id=f"{customer.external_id}-{i}",
                    event_name="api_call",
                    timestamp=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=day),
                    properties={},
                )
            )
    Event.objects.bulk_create(events)
    return subscriptions


def _new_invoices() -> int:
    return Invoice.objects.filter(billing_boundary_at__gt=datetime(2026, 1, 1, tzinfo=UTC)).count()


def _send_billing_run(worker) -> None:
    """Send the beat task to the worker's queue on its broker, on a connection of its own.

    Explicit, because the Celery app of the test process may have opened its producer pool (and queue
    routes) before the worker fixture pointed it at Redis.
    """
    from billing_project.celery import app
    from invoicing import tasks
    from tests.celery_support import BROKER

    with app.connection_for_write(BROKER) as connection, app.amqp.Producer(connection) as producer:
        tasks.billing_run_task.apply_async(args=[AS_OF.isoformat()], producer=producer, queue=worker.queue)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def chunked_worker(transactional_db, monkeypatch, request):
    """A real worker whose billing run fans out chunks of 4 subscriptions (10 chunk tasks here)."""
    monkeypatch.setenv("BILLING_RUN_CHUNK_SIZE", "4")
    return request.getfixturevalue("celery_worker")


@pytest.mark.celery_worker
@pytest.mark.slow  # ~11 s: two worker starts and 80 boundaries
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_run_then_run_again_bills_every_period_once(chunked_worker):
    subscriptions = _catalog_and_subscriptions()
    assert Invoice.objects.count() == SUBSCRIPTIONS  # the start invoices, numbered 1..40

    _send_billing_run(chunked_worker)
    _wait_for(lambda: _new_invoices() >= 8, timeout=60, what="the run to bill a few boundaries")
    chunked_worker.kill()
    at_kill = _new_invoices()
    print(f"killed the worker with {at_kill} of {2 * SUBSCRIPTIONS} boundary invoices stored")
    assert 8 <= at_kill < 2 * SUBSCRIPTIONS, f"the kill came too late: {at_kill} of {2 * SUBSCRIPTIONS}"

    # The run again: a new worker on the same queue takes the beat task and what the dead one left queued.
    chunked_worker.log.write_bytes(b"")
    chunked_worker.start()
    _send_billing_run(chunked_worker)
    _wait_for(lambda: _new_invoices() == 2 * SUBSCRIPTIONS, timeout=60, what="the second run to catch up")
    chunked_worker.stop()  # warm shutdown: lets queued duplicates of the chunks finish (they bill nothing)
    # And once more in-process, as `run_billing` would: nothing left to bill.
    summary = billing_run_execute(now=AS_OF)
    assert summary.invoices_created == 0 and not summary.failures

    # Every due period billed exactly once: 3 boundaries per subscription.
    per_subscription = Invoice.objects.values("subscription").annotate(n=Count("id"))
    assert sorted(row["n"] for row in per_subscription) == [3] * SUBSCRIPTIONS
    for subscription in subscriptions:
        boundaries = list(
            Invoice.objects.filter(subscription=subscription)
            .order_by("billing_boundary_at")
            .values_list("billing_boundary_at", flat=True)
        )
        assert boundaries == [datetime(2026, m, 1, tzinfo=UTC) for m in (1, 2, 3)]
    # $10 + ($5 + $10) + ($2 + $10) = $37 per subscription; x 40 = $1,480.00.
    assert Invoice.objects.aggregate(s=Sum("total"))["s"] == Decimal("1480.00")
    for subscription in subscriptions:
        totals = list(
            Invoice.objects.filter(subscription=subscription)
            .order_by("billing_boundary_at")
            .values_list("total", flat=True)
        )
        assert totals == [Decimal("10.00"), Decimal("15.00"), Decimal("12.00")]

    # Credits: one plan grant per period per wallet, and every wallet's ledger equals its balance.
    wallets = list(Wallet.objects.all())
    assert len(wallets) == SUBSCRIPTIONS
    for wallet in wallets:
        assert CreditGrant.objects.filter(wallet=wallet, kind=CreditGrant.Kind.PLAN).count() == 3
        check = wallet_ledger_check(wallet=wallet)
        assert check.ok, (wallet.pk, check)

    # Gapless numbers: all 120 invoices finalized (no grace period), numbered exactly 1..120.
    numbers = sorted(int(n.split("-")[-1]) for n in Invoice.objects.values_list("number", flat=True))
    assert numbers == list(range(1, 3 * SUBSCRIPTIONS + 1))
