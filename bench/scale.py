"""Scale benchmark: do ingest and usage reads slow down as the event table grows from 10M to 100M events?

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/billing_bench_scale \\
        .venv/bin/python -m bench.scale [--steps 10000000,40000000,100000000] [--chunk 5000000] [--customers 1000] \\
        [--heavy 1000000] [--ingest 50000] [--repeat 50] [--resume]

Events are generated server-side (``INSERT ... SELECT generate_series``, no Python loop) in chunks, each step's
events in time order over the twelve monthly partitions from March 2025 to February 2026, by one thread while
another folds them into the usage rollup as they arrive (as the after-ingest refresh keeps it in production).
One customer (``bench-heavy``) holds ``--heavy`` events in January 2026, the window read. At each step (events
stored so far) the bench measures, beside same-run baselines:

* usage p50/p95 for an ordinary customer and for the heavy one (January 2026), and their entitlement checks;
* usage of ``--customers`` customers at once;
* batch ingest through the API (gunicorn, 2 workers, 4 client threads, 1,000 events per request) of
  ``--ingest`` new events into the table as it is, beside a raw COPY of as many rows into the same table
  (before and after; the mean is the baseline).

The figures of every step are printed together at the end; nothing here runs in the test suite. ``--resume``
keeps what an earlier run generated and goes on from the number of events stored.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from bench.common import server_start, server_stop, setup_django, timed

SPAN_START = datetime(2025, 3, 1, tzinfo=UTC)
SPAN_SECONDS = 365 * 86400  # March 2025 to February 2026
WINDOW = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))


def stored_events() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM metering_event")
        return cursor.fetchone()[0]


def reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE metering_event, metering_eventkey, metering_usagerollup, metering_usagerollupday, "
            "metering_meterrollupstate, metering_eventidcheckpoint RESTART IDENTITY"
        )


def generate_chunk(*, first: int, count: int, base: int, step_count: int, customers: int) -> None:
    """Ordinary events ``first .. first+count-1`` (event ids ``o-<g>``; ``first`` is past the highest id stored, so
    they never repeat), customer g % customers. A step's events (ids ``base+1 .. base+step_count``) cover the
    year in time order, so a chunk is a slice of time, as live ingestion arrives, and folds into new rollup
    rows rather than rewriting every customer's hours again."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO metering_event (customer_external_id, event_id, event_name, timestamp, properties, received_at)
            SELECT 'bench-' || (g %% %s), 'o-' || g, 'api_call',
                   %s::timestamptz + ((g - %s - 1) * %s / %s) * interval '1 second',
                   jsonb_build_object('tokens', g %% 1000, 'model', CASE WHEN g %% 2 = 0 THEN 'gpt-4o' ELSE 'o1' END),
                   now()
            FROM generate_series(%s::bigint, %s::bigint) AS g
            """,
            [customers, SPAN_START, base, SPAN_SECONDS, step_count, first, first + count - 1],
        )


def generate_heavy(count: int) -> None:
    from django.db import connection

    seconds = int((WINDOW[1] - WINDOW[0]).total_seconds())
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO metering_event (customer_external_id, event_id, event_name, timestamp, properties, received_at)
            SELECT 'bench-heavy', 'h-' || g, 'api_call', %s::timestamptz + (g %% %s) * interval '1 second',
                   jsonb_build_object('tokens', g %% 1000, 'model', 'gpt-4o'), now()
            FROM generate_series(1, %s) AS g
            """,
            [WINDOW[0], seconds, count],
        )


def _generate_until(step: int, chunk: int, customers: int, failed: list) -> None:
    """Generate ordinary events in chunks until ``step`` are stored (a thread with its own connection)."""
    from django.db import connection

    try:
        base = stored_events()
        while (stored := stored_events()) < step:
            count = min(chunk, step - stored)
            generate_chunk(first=stored + 1, count=count, base=base, step_count=step - base, customers=customers)
    except BaseException as exc:  # reported by the main thread
        failed.append(exc)
    finally:
        connection.close()


def grow(*, step: int, chunk: int, customers: int) -> None:
    """Grow the table to ``step`` events while folding them into the rollup as they arrive (a generating
    thread and this one: the rollup refresh running beside ingestion, as in production), printing progress."""
    from metering.models import MeterRollupState

    start, t0 = stored_events(), time.perf_counter()
    failed: list = []
    thread = threading.Thread(target=_generate_until, args=(step, chunk, customers, failed))
    thread.start()
    last = 0.0
    while thread.is_alive():
        fold()
        if time.perf_counter() - last > 30:
            last = time.perf_counter()
            folded = MeterRollupState.objects.order_by("last_event_id").values_list("last_event_id", flat=True).first()
            stored = stored_events()
            elapsed = last - t0
            print(
                f"  {elapsed:6,.0f} s: {stored:>13,} events stored ({(stored - start) / elapsed:,.0f}/s), "
                f"folded up to {folded or 0:,}",
                flush=True,
            )
        time.sleep(0.5)
    thread.join()
    if failed:
        raise failed[0]
    fold()
    elapsed = time.perf_counter() - t0
    print(f"  {stored_events():,} events stored and folded; this step took {elapsed:,.0f} s", flush=True)


def fold() -> float:
    from metering.services import usage_rollup_refresh

    t = time.perf_counter()
    usage_rollup_refresh(now=datetime.now(UTC) + timedelta(hours=1), lag=timedelta(0))
    return time.perf_counter() - t


def copy_rate(n: int, tag: str) -> float:
    """Rows/s of a raw COPY of ``n`` new events into the event table as it is (nothing truncated)."""
    from bench.ingest import copy_rate as rate

    return rate(ingest_events(n, tag), empty_first=False)


def ingest_events(n: int, tag: str) -> list[dict]:
    """New events for February 2026 (the month after the window read): what live ingestion would send."""
    from bench.ingest import make_events

    return make_events(n, tag, customer="bench", customers=1000, month="2026-02")


def ingest_step(*, n: int, port: int, key: str) -> tuple[float, float, float]:
    """(API events/s, COPY rows/s before, COPY rows/s after), all into the table as it is."""
    from bench.ingest import run_threads

    run = uuid.uuid4().hex[:8]
    before = copy_rate(n, f"copy-{run}")
    events = ingest_events(n, f"http-{run}")
    bodies = [json.dumps({"events": events[i : i + 1000]}).encode() for i in range(0, n, 1000)]
    elapsed = run_threads(4, bodies, f"http://127.0.0.1:{port}/api/v1/events/batch", key)
    after = copy_rate(n, f"copy2-{run}")
    return n / elapsed, before, after


def measure(*, label: str, meter, repeat: int, customers: int) -> dict:
    from bench.usage import raw_sum
    from customers.entitlements import entitlement_check
    from customers.models import Customer
    from metering.selectors import meter_usage, usage_for_customers

    now = datetime(2026, 1, 20, tzinfo=UTC)
    out: dict = {"label": label}
    for who, customer in (("ordinary", "bench-1"), ("heavy", "bench-heavy")):
        out[f"raw {who}"] = timed(lambda c=customer: raw_sum(c), max(3, repeat // 10))
        out[f"usage {who}"] = timed(
            lambda c=customer: meter_usage(meter=meter, customer_external_id=c, start=WINDOW[0], end=WINDOW[1]),
            repeat,
        )
        cust = Customer.objects.get(external_id=customer)
        out[f"entitlement {who}"] = timed(
            lambda c=cust: entitlement_check(customer=c, feature_key="bench-tokens", now=now), repeat
        )
    ids = [f"bench-{i}" for i in range(customers)]
    out["many"] = timed(
        lambda: usage_for_customers(meters=[meter], customer_external_ids=ids, start=WINDOW[0], end=WINDOW[1]), 5
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", default="10000000,40000000,100000000", help="events stored at each measurement")
    parser.add_argument("--chunk", type=int, default=5_000_000, help="events per INSERT (then folded)")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--heavy", type=int, default=1_000_000)
    parser.add_argument("--ingest", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    setup_django()
    from bench.usage import fixtures
    from core.auth import api_key_create
    from metering.partitions import event_partitions_ensure

    event_partitions_ensure(now=SPAN_START, months_ahead=12)  # March 2025 to March 2026
    if not args.resume:
        reset()
        generate_heavy(args.heavy)
        print(f"heavy customer: {args.heavy:,} events in January 2026", flush=True)
    meter = fixtures()
    _, key = api_key_create(name=f"bench-scale-{uuid.uuid4().hex[:6]}", scopes=["ingest"])
    proc = server_start(args.port)
    results = []
    try:
        for step in steps:
            grow(step=step, chunk=args.chunk, customers=args.customers)
            from django.db import connection

            with connection.cursor() as cursor:
                cursor.execute("ANALYZE metering_event")
            api, copy_before, copy_after = ingest_step(n=args.ingest, port=args.port, key=key)
            fold()  # the ingested events are folded, as the after-ingest refresh does
            row = measure(label=f"{stored_events():,}", meter=meter, repeat=args.repeat, customers=args.customers)
            row["ingest"] = (api, copy_before, copy_after)
            results.append(row)
            print_row(row, args.customers)
    finally:
        server_stop(proc)
    print("\nresults (p50 / p95 in ms; each step beside its same-run baselines)")
    for row in results:
        print_row(row, args.customers)
    print(
        "targets: usage and entitlement p95 < 5 ms for both customers at every size; batch ingest >= 50% of COPY; "
        "neither degrades from 10M to 100M"
    )


def print_row(row: dict, customers: int) -> None:
    api, before, after = row["ingest"]
    copy = (before + after) / 2
    print(f"events stored {row['label']}", flush=True)
    for who in ("ordinary", "heavy"):
        raw, usage, ent = row[f"raw {who}"], row[f"usage {who}"], row[f"entitlement {who}"]
        print(
            f"  {who:<8} usage {usage[0]:6.2f} / {usage[1]:6.2f}   entitlement {ent[0]:6.2f} / {ent[1]:6.2f}   "
            f"(baseline raw SUM {raw[0]:8.2f} / {raw[1]:8.2f})",
            flush=True,
        )
    many = row["many"]
    print(f"  usage of {customers:,} customers at once {many[0]:7.2f} / {many[1]:7.2f}", flush=True)
    print(
        f"  batch ingest {api:,.0f} events/s = {api / copy:.0%} of COPY {copy:,.0f} rows/s "
        f"(before {before:,.0f}, after {after:,.0f})",
        flush=True,
    )


if __name__ == "__main__":
    main()
