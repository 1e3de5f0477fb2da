"""Ingestion benchmark: POST /events/batch events/s beside PostgreSQL's raw COPY rate of the same rows, and
POST /events requests/s beside a trivial DRF endpoint's requests/s, on a real server (gunicorn, 2 workers).
COPY is measured before and after the batches (the machine's load moves between them) and the batch rate is
set beside their mean.

    .venv/bin/python -m bench.ingest [--events 100000] [--threads 4] [--singles 3000] [--port 8765]

Uses the bench database (bench/common.py). The event table is emptied before each measurement.
"""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
import uuid
from datetime import UTC, datetime

from bench.common import server_start, server_stop, setup_django


def make_events(
    n: int, tag: str, *, customer: str = "cust", customers: int = 500, month: str = "2026-01"
) -> list[dict]:
    """``n`` events ``<tag>-<i>`` for customers ``<customer>-0`` .. ``<customer>-<customers - 1>``, spread over the
    first 28 days of ``month``."""
    return [
        {
            "event_id": f"{tag}-{i}",
            "customer": f"{customer}-{i % customers}",
            "event_name": "api_call",
            "timestamp": f"{month}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00Z",
            "properties": {"tokens": i % 1000, "model": "gpt-4o" if i % 2 else "o1"},
        }
        for i in range(n)
    ]


def truncate() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE metering_event, metering_eventkey")
        cursor.execute("VACUUM ANALYZE metering_event")


def copy_rate(events: list[dict], *, empty_first: bool = True) -> float:
    """Rows/s of COPY of the same rows (same columns, same table, same indexes); into an emptied table unless
    ``empty_first`` is False (the table as it is)."""
    from django.db import connection

    buf = io.StringIO()
    for e in events:
        props = json.dumps(e["properties"]).replace("\\", "\\\\")
        buf.write(
            f"{e['customer']}\t{e['event_id']}\t{e['event_name']}\t{e['timestamp']}\t{props}\t2026-01-01T00:00:00Z\n"
        )
    data = buf.getvalue()
    if empty_first:
        truncate()
    connection.ensure_connection()
    raw = connection.connection
    start = time.perf_counter()
    with raw.cursor() as cursor:
        with cursor.copy(
            "COPY metering_event (customer_external_id, event_id, event_name, timestamp, properties, received_at) "
            "FROM STDIN"
        ) as copy:
            copy.write(data)
    raw.commit() if not raw.autocommit else None
    return len(events) / (time.perf_counter() - start)


def run_threads(threads: int, bodies: list[bytes], url: str, key: str) -> float:
    """Posts every body once, spread over ``threads`` client threads; returns the elapsed seconds."""
    import requests

    lock = threading.Lock()
    queue = list(bodies)
    errors: list[str] = []

    def worker():
        session = requests.Session()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            response = session.post(url, data=body, headers=headers)
            if response.status_code >= 300 and response.status_code != 200:
                errors.append(f"{response.status_code} {response.text[:200]}")

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--singles", type=int, default=3000)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    setup_django()
    from core.auth import api_key_create
    from metering.models import Event, Meter

    Meter.objects.get_or_create(
        key="bench-tokens",
        defaults={"name": "Bench tokens", "event_name": "api_call", "aggregation": "sum", "field": "tokens"},
    )
    _, key = api_key_create(name=f"bench-{uuid.uuid4().hex[:6]}", scopes=["ingest"])
    from metering.partitions import event_partitions_ensure

    event_partitions_ensure(now=datetime(2026, 1, 1, tzinfo=UTC), months_ahead=0)  # the events' month
    run = uuid.uuid4().hex[:8]
    events = make_events(args.events, f"copy-{run}")
    copy = copy_rate(events)

    proc = server_start(args.port)
    try:
        base = f"http://127.0.0.1:{args.port}"
        truncate()
        batch_events = make_events(args.events, f"http-{run}")
        bodies = [
            json.dumps({"events": batch_events[i : i + 1000]}).encode() for i in range(0, len(batch_events), 1000)
        ]
        elapsed = run_threads(args.threads, bodies, f"{base}/api/v1/events/batch", key)
        stored = Event.objects.count()
        assert stored == args.events, f"stored {stored} of {args.events}"
        batch_rate = args.events / elapsed
        # The same batches again (a client retrying): every event a duplicate, answered 200 and not stored.
        resent = bodies[: max(1, len(bodies) // 5)]
        resent_rate = len(resent) * 1000 / run_threads(args.threads, resent, f"{base}/api/v1/events/batch", key)
        assert Event.objects.count() == args.events
        copy_after = copy_rate(make_events(args.events, f"copy2-{run}"))

        singles = [json.dumps(e).encode() for e in make_events(args.singles, f"single-{run}")]
        single_rate = args.singles / run_threads(args.threads, singles, f"{base}/api/v1/events", key)
        trivial = [b"{}"] * args.singles
        trivial_rate = args.singles / run_threads(args.threads, trivial, f"{base}/bench/trivial", key)
    finally:
        server_stop(proc)

    print(f"events: {args.events:,}; client threads: {args.threads}; server: gunicorn, 2 sync workers")
    copy_mean = (copy + copy_after) / 2
    print(
        f"raw COPY into metering_event          {copy_mean:12,.0f} rows/s   (baseline: mean of {copy:,.0f} before "
        f"and {copy_after:,.0f} after the batches)"
    )
    print(
        f"POST /events/batch (1,000 per batch)  {batch_rate:12,.0f} events/s = {batch_rate / copy_mean:.0%} of COPY "
        "(target >= 50%)"
    )
    print(
        f"  the same batches sent again         {resent_rate:12,.0f} events/s (all duplicates: the COPY is undone, "
        "then the INSERT skips them)"
    )
    print(f"trivial DRF endpoint                  {trivial_rate:12,.0f} requests/s (baseline)")
    print(
        f"POST /events (one event)              {single_rate:12,.0f} requests/s = {single_rate / trivial_rate:.0%} "
        "of trivial (target >= 50%)"
    )


if __name__ == "__main__":
    main()
