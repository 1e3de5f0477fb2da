"""Benchmark: an invoice run for many subscriptions with usage (run by hand, never in the test suite).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/billing_bench_invoice \\
        .venv/bin/python bench/invoice_run.py [--subscriptions 10000] [--events 10000000] [--skip-setup] [--rollup]

Uses its own database (created if missing, migrated, emptied of billing rows). Setup: one plan with a
monthly fee and three usage prices on three meters; N customers each with one calendar subscription
started Jan 1 2026; E events spread over January, generated inside PostgreSQL with
``INSERT ... SELECT generate_series`` (no Python loop). Then the Feb 1 boundary is billed for every
subscription, with one worker process, then again (after resetting) with two, each worker running the
per-subscription billing (``subscriptions_bill``) for its share. Printed: invoices/s for each, the peak
memory of the workers (``resource.getrusage``, max RSS), and a same-run baseline: the rate of a bare guarded
wallet-debit-like transaction (ledger insert + guarded balance update) on one process, measured before and after
the runs (the mean is the baseline the one-worker rate is divided by). Runs with ``DEBUG`` off, as production.

Workers take disjoint shares (subscription ids modulo the number of workers), so they never wait on each
other's customer or subscription locks; they meet only on the gapless invoice number, taken last.

Usage is read as production reads it: from aggregate queries (the metering read path), never by loading
events. Without ``--rollup`` every event is still raw (the worst case: nothing folded yet); with ``--rollup``
the hourly usage rollup is built first (what the scheduled ``metering.usage_rollup_refresh`` keeps up to
date), and the rollup time is printed on its own. Each run is checked: one invoice per subscription, numbers
gapless, and the same billed total for one and for two workers.
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
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "billing_project.settings")
# Measured as production runs: DEBUG off (DEBUG=true keeps a log of every SQL statement, which a run does not pay).
os.environ["DEBUG"] = "false"
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")

JAN1 = datetime(2026, 1, 1, tzinfo=UTC)
FEB1 = datetime(2026, 2, 1, tzinfo=UTC)


def _django():
    import django

    django.setup()


def _ensure_database() -> None:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        sys.exit(
            "Set DATABASE_URL to a database of its own, e.g. postgres://postgres@127.0.0.1:5432/billing_bench_invoice"
        )
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def setup(subscriptions: int, events: int) -> None:
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from catalog.models import Plan, PlanVersion, Price
    from customers.models import Customer, Subscription
    from metering.models import Meter

    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE invoicing_invoiceline, invoicing_payment, invoicing_creditnote, invoicing_invoice, "
            "invoicing_numbersequence, metering_event, metering_eventkey, metering_usagerollup, "
            "metering_usagerollupday, "
            "metering_meterrollupstate, metering_eventidcheckpoint, customers_subscription, "
            "customers_historicalsubscription "
            "RESTART IDENTITY CASCADE"
        )
    Customer.objects.filter(external_id__startswith="bench-").delete()
    plan, _ = Plan.objects.get_or_create(key="bench-plan", defaults={"name": "Bench", "currency": "USD"})
    version = PlanVersion.objects.filter(plan=plan, number=1).first()
    if version is None:
        version = PlanVersion.objects.create(
            plan=plan,
            number=1,
            status=PlanVersion.Status.PUBLISHED,
            effective_from=datetime(2020, 1, 1, tzinfo=UTC),
            published_at=datetime(2020, 1, 1, tzinfo=UTC),
        )
        Price.objects.create(
            plan_version=version, name="Platform fee", model="flat_fee", timing="in_advance", amount=Decimal("49")
        )
        for i in range(3):
            meter, _ = Meter.objects.get_or_create(
                key=f"bench-m{i}",
                defaults={"name": f"Bench meter {i}", "event_name": f"bench_ev{i}", "aggregation": "count"},
            )
            Price.objects.create(
                plan_version=version,
                name=f"Usage {i}",
                model="per_unit",
                timing="in_arrears",
                meter=meter,
                unit_amount=Decimal("0.0015"),
                position=i + 1,
            )
    customers = Customer.objects.bulk_create(
        [Customer(external_id=f"bench-{i}", name=f"Bench {i}", currency="USD") for i in range(subscriptions)],
        batch_size=5000,
    )
    Subscription.objects.bulk_create(
        [
            Subscription(
                customer=c,
                plan=plan,
                plan_version=version,
                billing="calendar",
                start_at=JAN1,
                current_period_start=JAN1,
                current_period_end=FEB1,
            )
            for c in customers
        ],
        batch_size=5000,
    )
    from metering.partitions import event_partitions_ensure

    event_partitions_ensure(now=JAN1, months_ahead=1)  # January and February 2026
    t1 = time.perf_counter()
    with connection.cursor() as cur:
        # Customer g % N, meter (g / N) % 3, one timestamp per second through January (2,678,400 s).
        cur.execute(
            "INSERT INTO metering_event (customer_external_id, event_id, event_name, timestamp, properties, "
            "received_at) "
            "SELECT 'bench-' || (g %% %s), 'e' || g, 'bench_ev' || ((g / %s) %% 3), "
            "%s::timestamptz + ((g * 7919) %% 2678400) * interval '1 second', '{}'::jsonb, now() "
            "FROM generate_series(0::bigint, %s - 1) g",
            [subscriptions, subscriptions, JAN1, events],
        )
        cur.execute("ANALYZE metering_event")
    print(
        f"setup: {subscriptions:,} subscriptions in {t1 - t0:.1f}s, {events:,} events in "
        f"{time.perf_counter() - t1:.1f}s",
        flush=True,
    )


def reset_billing() -> None:
    from django.db import connection

    from customers.models import Subscription

    with connection.cursor() as cur:
        cur.execute(
            "TRUNCATE invoicing_invoiceline, invoicing_invoice, invoicing_numbersequence RESTART IDENTITY CASCADE"
        )
    Subscription.objects.filter(customer__external_id__startswith="bench-").update(
        current_period_start=JAN1, current_period_end=FEB1, status="active", ended_at=None
    )


def _worker(ids: list[int], queue) -> None:
    _django()
    from invoicing.services.run import RunSummary, subscriptions_bill

    summary = RunSummary(as_of=FEB1)
    cpu = time.process_time()
    subscriptions_bill(subscription_ids=ids, now=FEB1, summary=summary)
    queue.put(
        (
            summary.invoices_created,
            len(summary.failures),
            summary.failures[:3],
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            time.process_time() - cpu,
        )
    )


def _check() -> tuple[int, Decimal]:
    """One invoice per subscription for the boundary, gapless numbers; returns (invoices, billed total)."""
    from django.db.models import Count, Max, Sum

    from invoicing.models import Invoice

    agg = Invoice.objects.filter(billing_boundary_at=FEB1).aggregate(
        n=Count("id"),
        subs=Count("subscription", distinct=True),
        total=Sum("total"),
        last=Max("number"),
    )
    numbered = Invoice.objects.filter(number__isnull=False).count()
    assert agg["n"] == agg["subs"], "two invoices for one subscription"
    assert agg["last"] is None or int(agg["last"].split("-")[1]) == numbered, "numbers are not gapless"
    return agg["n"], agg["total"] or Decimal(0)


def run(workers: int) -> dict:
    from django.db import connections

    from invoicing.services.run import due_subscription_ids

    ids = due_subscription_ids(now=FEB1)
    connections.close_all()
    queue = mp.get_context("fork").Queue()
    shares = [ids[i::workers] for i in range(workers)]
    procs = [mp.get_context("fork").Process(target=_worker, args=(share, queue)) for share in shares]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - t0
    created = sum(r[0] for r in results)
    failures = sum(r[1] for r in results)
    for r in results:
        for f in r[2]:
            print("  failure:", f)
    peak_kb = max(r[3] for r in results)
    cpu_ms = sum(r[4] for r in results) * 1000 / created if created else 0.0
    rate = created / elapsed if elapsed else 0.0
    invoices, total = _check()
    print(
        f"{workers} worker(s): {created:,} invoices in {elapsed:.1f}s = {rate:,.0f} invoices/s; {failures} failures; "
        f"worker CPU {cpu_ms:.2f} ms/invoice; peak worker RSS {peak_kb / 1024:.0f} MiB; "
        f"checked: {invoices:,} invoices, billed {total:,.2f} USD",
        flush=True,
    )
    return {"rate": rate, "created": created, "peak_kb": peak_kb, "total": total, "elapsed": elapsed}


def rollup(enabled: bool) -> None:
    """Build the hourly usage rollup of the bench meters (``--rollup``), or forget it (raw events only)."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from metering.models import Meter
    from metering.services import meter_rollup_reset, usage_rollup_refresh

    meters = list(Meter.objects.filter(key__startswith="bench-m"))
    if not enabled:
        with transaction.atomic():
            for meter in meters:
                meter_rollup_reset(meter=meter)
        print("usage: read from raw events (no rollup)", flush=True)
        return
    t0 = time.perf_counter()
    usage_rollup_refresh(now=timezone.now(), lag=timedelta(0), meters=meters)
    print(f"usage: hourly rollup built in {time.perf_counter() - t0:.1f}s (not part of the run's time)", flush=True)


def baseline(seconds: float = 3.0) -> float:
    """A bare guarded wallet-debit-like transaction: ledger insert + guarded balance update, one process."""
    from django.db import connection, transaction

    with connection.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS bench_balance (id int PRIMARY KEY, balance numeric NOT NULL CHECK (balance "
            ">= 0))"
        )
        cur.execute(
            "CREATE TABLE IF NOT EXISTS bench_ledger (id bigserial PRIMARY KEY, wallet int, credits numeric, key "
            "text UNIQUE)"
        )
        cur.execute("TRUNCATE bench_ledger")
        cur.execute("INSERT INTO bench_balance VALUES (1, 1e12) ON CONFLICT (id) DO UPDATE SET balance = 1e12")
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        with transaction.atomic(), connection.cursor() as cur:
            cur.execute("SELECT balance FROM bench_balance WHERE id = 1 FOR UPDATE")
            cur.execute("INSERT INTO bench_ledger (wallet, credits, key) VALUES (1, -1, %s)", [f"k{n}"])
            cur.execute("UPDATE bench_balance SET balance = balance - 1 WHERE id = 1 AND balance >= 1")
        n += 1
    rate = n / (time.perf_counter() - t0)
    print(
        f"baseline: guarded debit transaction (ledger insert + balance update) {rate:,.0f}/s on one process", flush=True
    )
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--skip-setup", action="store_true", help="reuse the data of a previous run")
    parser.add_argument("--rollup", action="store_true", help="build the hourly usage rollup before billing")
    args = parser.parse_args()
    _ensure_database()
    _django()
    if not args.skip_setup:
        setup(args.subscriptions, args.events)
    from customers.models import Subscription
    from metering.models import Event

    subscriptions = Subscription.objects.filter(customer__external_id__startswith="bench-").count()
    events = Event.objects.count()
    print(
        f"sizes: {subscriptions:,} subscriptions, 3 usage prices each, {events:,} events; {os.cpu_count()} CPU cores",
        flush=True,
    )
    rollup(args.rollup)
    before = baseline()
    reset_billing()
    one = run(1)
    reset_billing()
    two = run(2)
    # The baseline again after the runs: on shared cores the load moves within a run; the ratio uses the mean.
    after = baseline()
    base = (before + after) / 2
    if one["total"] != two["total"]:
        print(f"MISMATCH: 1 worker billed {one['total']}, 2 workers {two['total']}", flush=True)
    scale = two["rate"] / one["rate"] if one["rate"] else 0.0
    print(
        "\nresults\n"
        f"  sizes            {subscriptions:,} subscriptions x 3 usage prices, {events:,} events "
        f"({'hourly rollup' if args.rollup else 'raw events'})\n"
        f"  1 worker         {one['rate']:,.0f} invoices/s ({one['created']:,} in {one['elapsed']:.1f}s)\n"
        f"  2 workers        {two['rate']:,.0f} invoices/s ({two['created']:,} in {two['elapsed']:.1f}s), "
        f"x{scale:.2f}\n"
        f"  baseline         {base:,.0f} guarded debit transactions/s on one process (same run: {before:,.0f} "
        f"before, {after:,.0f} after the invoice runs)\n"
        f"  ratio            1 worker = {one['rate'] / base:.1%} of the baseline (target >= 25%)\n"
        f"  peak memory      {max(one['peak_kb'], two['peak_kb']) / 1024:.0f} MiB per worker (max RSS); "
        f"parent {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB\n"
        f"  same results     {'yes' if one['total'] == two['total'] else 'NO'}: billed {one['total']:,.2f} USD",
        flush=True,
    )


if __name__ == "__main__":
    main()
