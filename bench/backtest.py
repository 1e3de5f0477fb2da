"""Benchmark: backtest a draft version on a month of real billed usage (run by hand, never in the test suite).

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/billing_bench_backtest \\
        .venv/bin/python bench/backtest.py [--subscriptions 10000] [--events 10000000] [--skip-setup]

Uses its own database (``bench.common.setup_django``: created if missing, migrated). Setup: plan ``bench-bt`` v1 =
$49 a month in arrears + three per-unit usage prices ($0.0015 a unit) on three count meters; N customers each
with one calendar subscription started Jan 1 2026; E events spread over January, generated inside PostgreSQL
(``INSERT ... SELECT generate_series``); January is then billed for real (the Feb 1 boundary, through
``subscriptions_bill``, two worker processes). Draft v2 = $39 a month + graduated tiers on the first meter
(first 200 units free, then $0.002) and $0.001 a unit on the others.

Measured: ``plan_version_backtest`` of v2 over ``[Jan 1, Feb 1)`` for every subscription: the wall time, the
rows/s, the peak memory of the process. Checked: v1 re-rated on its own usage finds every row unchanged (the
same line builders and usage queries as the invoices), and the backtest wrote nothing (invoice count and
billed total before and after). Usage is read as billing reads it (aggregate queries per meter and period;
``--rollup`` builds the hourly rollup first, as the scheduled refresh keeps it).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/billing_bench_backtest")

from bench.common import bench_env, setup_django  # noqa: E402

JAN1 = datetime(2026, 1, 1, tzinfo=UTC)
FEB1 = datetime(2026, 2, 1, tzinfo=UTC)
NOW = datetime(2026, 2, 10, tzinfo=UTC)
PREFIX = "btc-"


def setup(subscriptions: int, events: int) -> None:
    from django.db import connection

    from catalog.models import Plan, PlanVersion
    from catalog.services import plan_create, plan_version_create
    from customers.models import Customer, Subscription
    from metering.models import Meter
    from metering.services import meter_create

    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE invoicing_invoiceline, invoicing_payment, invoicing_creditnote, invoicing_invoice, "
            "invoicing_numbersequence, invoicing_backtestrun, invoicing_subscriptionmigration, metering_event, "
            "metering_usagerollup, metering_meterrollupstate, metering_eventidcheckpoint, customers_subscription, "
            "customers_historicalsubscription RESTART IDENTITY CASCADE"
        )
    Customer.objects.filter(external_id__startswith=PREFIX).delete()
    for i in range(3):
        if not Meter.objects.filter(key=f"bt-m{i}").exists():
            meter_create(key=f"bt-m{i}", name=f"Backtest meter {i}", event_name=f"bt_ev{i}", aggregation="count")
    plan = Plan.objects.filter(key="bench-bt").first() or plan_create(key="bench-bt", name="Bench", currency="USD")
    PlanVersion.objects.filter(plan=plan, status=PlanVersion.Status.DRAFT).delete()
    v1 = PlanVersion.objects.filter(plan=plan, number=1).first() or plan_version_create(
        plan=plan,
        publish=True,
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
        prices=[
            {"name": "Platform fee", "model": "flat_fee", "amount": "49", "timing": "in_arrears"},
            *(
                {"name": f"Usage {i}", "model": "per_unit", "meter": f"bt-m{i}", "unit_amount": "0.0015"}
                for i in range(3)
            ),
        ],
    )
    customers = Customer.objects.bulk_create(
        [Customer(external_id=f"{PREFIX}{i}", name=f"Bench {i}", currency="USD") for i in range(subscriptions)],
        batch_size=5000,
    )
    Subscription.objects.bulk_create(
        [
            Subscription(
                customer=c,
                plan=plan,
                plan_version=v1,
                billing="calendar",
                start_at=JAN1,
                current_period_start=JAN1,
                current_period_end=FEB1,
            )
            for c in customers
        ],
        batch_size=5000,
    )
    t1 = time.perf_counter()
    with connection.cursor() as cur:
        # Customer g % N, meter (g / N) % 3, one timestamp per second through January (2,678,400 s).
        cur.execute(
            "INSERT INTO metering_event (customer_external_id, event_id, event_name, timestamp, properties, "
            "received_at) "
            "SELECT %s || (g %% %s), 'e' || g, 'bt_ev' || ((g / %s) %% 3), "
            "%s::timestamptz + ((g * 7919) %% 2678400) * interval '1 second', '{}'::jsonb, now() "
            "FROM generate_series(0::bigint, %s - 1) g",
            [PREFIX, subscriptions, subscriptions, JAN1, events],
        )
        cur.execute("ANALYZE metering_event")
    t2 = time.perf_counter()
    print(f"setup: {subscriptions:,} subscriptions in {t1 - t0:.1f}s, {events:,} events in {t2 - t1:.1f}s", flush=True)
    bill()
    print(f"setup: January billed (Feb 1 boundary, 2 workers) in {time.perf_counter() - t2:.1f}s", flush=True)


def _bill_share(ids: list[int], queue) -> None:
    import django

    django.setup()
    from invoicing.services.run import RunSummary, subscriptions_bill

    summary = RunSummary(as_of=FEB1)
    subscriptions_bill(subscription_ids=ids, now=FEB1, summary=summary)
    queue.put((summary.invoices_created, summary.failures[:3]))


def bill(workers: int = 2) -> None:
    from django.db import connections

    from invoicing.services.run import due_subscription_ids

    ids = due_subscription_ids(now=FEB1)
    connections.close_all()
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_bill_share, args=(ids[i::workers], queue)) for i in range(workers)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    for _, failures in results:
        for f in failures:
            print("  billing failure:", f)


def draft_v2():
    from catalog.models import Plan, PlanVersion
    from catalog.services import plan_version_create

    plan = Plan.objects.get(key="bench-bt")
    PlanVersion.objects.filter(plan=plan, status=PlanVersion.Status.DRAFT).delete()
    return plan_version_create(
        plan=plan,
        prices=[
            {"name": "Platform fee", "model": "flat_fee", "amount": "39", "timing": "in_arrears"},
            {
                "name": "Usage 0",
                "model": "tiered",
                "meter": "bt-m0",
                "tier_mode": "graduated",
                "tiers": [{"up_to": 200, "unit_amount": "0"}, {"up_to": None, "unit_amount": "0.002"}],
            },
            {"name": "Usage 1", "model": "per_unit", "meter": "bt-m1", "unit_amount": "0.001"},
            {"name": "Usage 2", "model": "per_unit", "meter": "bt-m2", "unit_amount": "0.001"},
        ],
    )


def billed() -> tuple[int, Decimal]:
    from django.db.models import Count, Sum

    from invoicing.models import Invoice

    agg = Invoice.objects.aggregate(n=Count("id"), total=Sum("subtotal"))
    return agg["n"], agg["total"] or Decimal(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--skip-setup", action="store_true", help="reuse the data (and invoices) of a previous run")
    parser.add_argument("--rollup", action="store_true", help="build the hourly usage rollup first")
    parser.add_argument("--raw", action="store_true", help="forget the hourly rollup: every read scans raw events")
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = bench_env()["DATABASE_URL"]
    setup_django()
    if not args.skip_setup:
        setup(args.subscriptions, args.events)
    if args.raw:
        from django.db import transaction

        from metering.models import Meter
        from metering.services import meter_rollup_reset

        with transaction.atomic():
            for meter in Meter.objects.filter(key__startswith="bt-m"):
                meter_rollup_reset(meter=meter)
        print("usage: read from raw events (no rollup)")
    if args.rollup:
        from datetime import timedelta

        from django.utils import timezone

        from metering.models import Meter
        from metering.services import usage_rollup_refresh

        t0 = time.perf_counter()
        usage_rollup_refresh(
            now=timezone.now(), lag=timedelta(0), meters=list(Meter.objects.filter(key__startswith="bt-m"))
        )
        print(f"usage: hourly rollup built in {time.perf_counter() - t0:.1f}s (not part of the backtest's time)")

    from catalog.models import PlanVersion
    from invoicing.services.backtest import plan_version_backtest
    from metering.models import Event

    v1 = PlanVersion.objects.get(plan__key="bench-bt", number=1)
    v2 = draft_v2()
    before = billed()
    print(f"sizes: {before[0]:,} invoices, {Event.objects.count():,} events; {os.cpu_count()} CPU cores", flush=True)

    moves: list[tuple[int, int]] = []
    t0 = time.perf_counter()
    result = plan_version_backtest(
        version=v2, start=JAN1, end=FEB1, now=NOW, progress=lambda d, t: moves.append((d, t))
    )
    elapsed = time.perf_counter() - t0
    t = result.totals
    print(
        f"backtest v2: {t.customers:,} subscriptions in {elapsed:.1f}s = {t.customers / elapsed:,.0f}/s; "
        f"actual {t.actual:,.2f} -> simulated {t.simulated:,.2f} ({t.delta:+,.2f}); up {t.up:,}, down {t.down:,}, "
        f"unchanged {t.unchanged:,}; {len(moves)} progress reports",
        flush=True,
    )
    t1 = time.perf_counter()
    same = plan_version_backtest(version=v1, start=JAN1, end=FEB1, now=NOW)
    elapsed_v1 = time.perf_counter() - t1
    after = billed()
    unchanged = same.totals.unchanged == same.totals.customers and same.totals.delta == 0
    ok = unchanged and before == after
    print(
        "\nresults\n"
        f"  sizes           {result.totals.customers:,} subscriptions x 4 prices, {Event.objects.count():,} events\n"
        f"  backtest v2     {elapsed:.1f}s ({result.totals.customers / elapsed:,.0f} subscriptions/s)\n"
        f"  backtest v1     {elapsed_v1:.1f}s; every row unchanged: {'yes' if unchanged else 'NO'}\n"
        f"  nothing saved   {'yes' if before == after else 'NO'} ({after[0]:,} invoices, {after[1]:,.2f} USD)\n"
        f"  peak memory     {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (max RSS)\n"
        f"  checks          {'pass' if ok else 'FAIL'}",
        flush=True,
    )


if __name__ == "__main__":
    main()
