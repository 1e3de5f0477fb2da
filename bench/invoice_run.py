"""Benchmark: an invoice run for many subscriptions with usage (run by hand, never in the test suite).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/billing_bench_invoice \\
        .venv/bin/python bench/invoice_run.py [--subscriptions 10000] [--events 10000000]

Uses its own database (created if missing, migrated, emptied of billing rows). Setup: one plan with a
monthly fee and three usage prices on three meters; N customers each with one calendar subscription
started Jan 1 2026; E events spread over January, generated inside PostgreSQL with
``INSERT ... SELECT generate_series`` (no Python loop). Then the Feb 1 boundary is billed for every
subscription, with one worker process, then again (after resetting) with two, each worker running the
per-subscription billing (``subscriptions_bill``) for its share. Printed: invoices/s for each, the peak
memory of the workers (``resource.getrusage``, max RSS), and a same-run baseline: the rate of a bare guarded
wallet-debit-like transaction (ledger insert + guarded balance update) on one process.
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

JAN1 = datetime(2026, 1, 1, tzinfo=UTC)
FEB1 = datetime(2026, 2, 1, tzinfo=UTC)


def _django():
    import django

    django.setup()


def _ensure_database() -> None:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        sys.exit("Set DATABASE_URL to a database of its own, e.g. postgres://postgres@127.0.0.1:5432/billing_bench_invoice")
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
            "invoicing_numbersequence, metering_event, customers_subscription, customers_historicalsubscription "
            "RESTART IDENTITY CASCADE"
        )
    Customer.objects.filter(external_id__startswith="bench-").delete()
    plan, _ = Plan.objects.get_or_create(key="bench-plan", defaults={"name": "Bench", "currency": "USD"})
    version = PlanVersion.objects.filter(plan=plan, number=1).first()
    if version is None:
        version = PlanVersion.objects.create(
            plan=plan, number=1, status=PlanVersion.Status.PUBLISHED, effective_from=datetime(2020, 1, 1, tzinfo=UTC),
            published_at=datetime(2020, 1, 1, tzinfo=UTC),
        )
        Price.objects.create(plan_version=version, name="Platform fee", model="flat_fee", timing="in_advance", amount=Decimal("49"))
        for i in range(3):
            meter, _ = Meter.objects.get_or_create(
                key=f"bench-m{i}", defaults={"name": f"Bench meter {i}", "event_name": f"bench_ev{i}", "aggregation": "count"}
            )
            Price.objects.create(
                plan_version=version, name=f"Usage {i}", model="per_unit", timing="in_arrears", meter=meter,
                unit_amount=Decimal("0.0015"), position=i + 1,
            )
    customers = Customer.objects.bulk_create(
        [Customer(external_id=f"bench-{i}", name=f"Bench {i}", currency="USD") for i in range(subscriptions)],
        batch_size=5000,
    )
    Subscription.objects.bulk_create(
        [
            Subscription(
                customer=c, plan=plan, plan_version=version, billing="calendar", start_at=JAN1,
                current_period_start=JAN1, current_period_end=FEB1,
            )
            for c in customers
        ],
        batch_size=5000,
    )
    t1 = time.perf_counter()
    with connection.cursor() as cur:
        # Customer g % N, meter (g / N) % 3, one timestamp per second through January (2,678,400 s).
        cur.execute(
            "INSERT INTO metering_event (customer_external_id, event_id, event_name, timestamp, properties, received_at) "
            "SELECT 'bench-' || (g %% %s), 'e' || g, 'bench_ev' || ((g / %s) %% 3), "
            "%s::timestamptz + ((g * 7919) %% 2678400) * interval '1 second', '{}'::jsonb, now() "
            "FROM generate_series(0::bigint, %s - 1) g",
            [subscriptions, subscriptions, JAN1, events],
        )
        cur.execute("ANALYZE metering_event")
    print(
        f"setup: {subscriptions:,} subscriptions in {t1 - t0:.1f}s, {events:,} events in {time.perf_counter() - t1:.1f}s",
        flush=True,
    )


def reset_billing() -> None:
    from django.db import connection

    from customers.models import Subscription

    with connection.cursor() as cur:
        cur.execute("TRUNCATE invoicing_invoiceline, invoicing_invoice, invoicing_numbersequence RESTART IDENTITY CASCADE")
    Subscription.objects.filter(customer__external_id__startswith="bench-").update(
        current_period_start=JAN1, current_period_end=FEB1, status="active", ended_at=None
    )


def _worker(ids: list[int], queue) -> None:
    _django()
    from invoicing.services.run import RunSummary, subscriptions_bill

    summary = RunSummary(as_of=FEB1)
    subscriptions_bill(subscription_ids=ids, now=FEB1, summary=summary)
    queue.put((summary.invoices_created, len(summary.failures), summary.failures[:3],
               resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))


def run(workers: int) -> tuple[float, int, int]:
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
    rate = created / elapsed if elapsed else 0.0
    print(
        f"{workers} worker(s): {created:,} invoices in {elapsed:.1f}s = {rate:,.0f} invoices/s; "
        f"{failures} failures; peak worker RSS {peak_kb / 1024:.0f} MiB",
        flush=True,
    )
    return rate, created, peak_kb


def baseline(seconds: float = 3.0) -> float:
    """A bare guarded wallet-debit-like transaction: ledger insert + guarded balance update, one process."""
    from django.db import connection, transaction

    with connection.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bench_balance (id int PRIMARY KEY, balance numeric NOT NULL CHECK (balance >= 0))")
        cur.execute("CREATE TABLE IF NOT EXISTS bench_ledger (id bigserial PRIMARY KEY, wallet int, credits numeric, key text UNIQUE)")
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
    print(f"baseline: guarded debit transaction (ledger insert + balance update) {rate:,.0f}/s on one process", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--skip-setup", action="store_true", help="reuse the data of a previous run")
    args = parser.parse_args()
    _ensure_database()
    _django()
    if not args.skip_setup:
        setup(args.subscriptions, args.events)
    base = baseline()
    reset_billing()
    one, created1, _ = run(1)
    reset_billing()
    two, created2, _ = run(2)
    print(
        f"summary: {created1:,} invoices; 1 worker {one:,.0f}/s, 2 workers {two:,.0f}/s "
        f"(x{two / one if one else 0:.2f}); baseline debit {base:,.0f}/s; "
        f"parent peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB",
        flush=True,
    )


if __name__ == "__main__":
    main()
