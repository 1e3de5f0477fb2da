"""Reads right after a burst of ingestion: usage and entitlement p50/p95 at once after 340,000 events land
for this month (one customer holding 300,000 of them, an ordinary one 200), with and without the refresh
that a stored batch queues (``USAGE_ROLLUP_AFTER_INGEST_SECONDS``, docs/metering.md "Rollup freshness").

    .venv/bin/python -m bench.burst [--events 340000] [--heavy 300000] [--ordinary 200] [--reads 40]

Events go through the storage path of ``POST /events/batch`` (``metering.services.events_store``, 1,000 per
batch) in this process; the queued refresh runs on a second thread with its own connection, as a Celery
worker would. The baseline is the same burst with no refresh since the previous one (what a read saw when
only the scheduled rollup ran). Uses its own database (``BENCH_DATABASE_URL``, bench/common.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bench.common import percentile, setup_django


def fixtures(month: datetime):
    from django.db import transaction

    from catalog.models import Entitlement, Feature, Plan, PlanVersion
    from customers.models import Customer, Subscription
    from customers.services import subscription_row_create
    from metering.models import Meter

    meter, _ = Meter.objects.get_or_create(
        key="burst-tokens",
        defaults={"name": "Burst tokens", "event_name": "api_call", "aggregation": "sum", "field": "tokens"},
    )
    feature, _ = Feature.objects.get_or_create(
        key="burst-tokens", defaults={"name": "Tokens", "type": "metered", "meter": meter}
    )
    plan, _ = Plan.objects.get_or_create(key="burst-plan", defaults={"name": "Burst", "currency": "USD"})
    version, _ = PlanVersion.objects.get_or_create(
        plan=plan,
        number=1,
        defaults={
            "status": "published",
            "effective_from": datetime(2020, 1, 1, tzinfo=UTC),
            "published_at": datetime(2020, 1, 1, tzinfo=UTC),
        },
    )
    Entitlement.objects.get_or_create(plan_version=version, feature=feature, defaults={"limit": Decimal(10**12)})
    customers = {}
    for external_id in ("burst-heavy", "burst-ordinary"):
        customer, _ = Customer.objects.get_or_create(
            external_id=external_id, defaults={"name": external_id, "currency": "USD"}
        )
        if not Subscription.objects.filter(customer=customer).exists():
            with transaction.atomic():
                subscription_row_create(customer=customer, plan=plan, start_at=month)
        customers[external_id] = customer
    return meter, customers


def batches(run: str, events: int, heavy: int, ordinary: int, month: datetime, now: datetime):
    """Batches of 1,000 CleanEvents, customers interleaved as real traffic would be."""
    from metering.ingest import CleanEvent

    span = max(int((now - month).total_seconds()) - 1, 1)
    out, batch = [], []
    others = 0
    step = max((events - heavy) // max(ordinary, 1), 1)
    for i in range(events):
        if (i * heavy) // events != ((i + 1) * heavy) // events:  # heavy events spread evenly through the burst
            customer = "burst-heavy"
        else:
            others += 1
            customer = "burst-ordinary" if others % step == 0 and others // step <= ordinary else f"burst-{i % 500}"
        at = month + timedelta(seconds=(i * 7919) % span)
        batch.append(
            CleanEvent(
                customer=customer,
                event_id=f"{run}-{i}",
                event_name="api_call",
                timestamp=at.isoformat(),
                properties=json.dumps({"tokens": i % 1000}),
            )
        )
        if len(batch) == 1000:
            out.append(batch)
            batch = []
    if batch:
        out.append(batch)
    return out


def reset() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE metering_event, metering_eventkey, metering_usagerollup, metering_usagerollupday, "
            "metering_meterrollupstate, "
            "metering_eventidcheckpoint"
        )


def run(label: str, args, month: datetime, now: datetime, meter, customers, refresh_after_ingest: bool) -> list[str]:
    from django.conf import settings
    from django.core.cache import cache
    from django.db import connection, connections

    from customers.entitlements import entitlement_check
    from metering.selectors import meter_usage
    from metering.services import events_store, usage_rollup_refresh, usage_rollup_soon

    reset()
    cache.delete("metering:usage_rollup_soon")
    usage_rollup_refresh(now=now)  # the state rows exist; the rollup is empty, as after a quiet night
    settings.USAGE_ROLLUP_AFTER_INGEST_SECONDS = 1.0 if refresh_after_ingest else 0
    workers: list[threading.Thread] = []

    def enqueue(delay: float) -> None:
        def work():
            time.sleep(delay)
            try:
                usage_rollup_refresh(now=datetime.now(UTC))
            finally:
                connections.close_all()

        thread = threading.Thread(target=work)
        workers.append(thread)
        thread.start()

    todo = batches(label[:4], args.events, args.heavy, args.ordinary, month, now)
    started = time.perf_counter()
    for batch in todo:
        events_store(events=batch)
        usage_rollup_soon(enqueue=enqueue)
    ingest_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM metering_event WHERE id > COALESCE((SELECT last_event_id FROM "
            "metering_meterrollupstate WHERE meter_id = %s), 0)",
            [meter.id],
        )
        tail = cursor.fetchone()[0]
    lines = [
        f"{label}: {args.events:,} events stored in {ingest_s:,.1f} s ({args.events / ingest_s:,.0f}/s); "
        f"raw tail at the first read: {tail:,} events"
    ]
    end = month + timedelta(days=40)
    for name, customer in (("heavy", customers["burst-heavy"]), ("ordinary", customers["burst-ordinary"])):
        for what, fn in (
            (
                "usage",
                lambda c=customer: meter_usage(
                    meter=meter, customer_external_id=c.external_id, start=month, end=end.replace(day=1)
                ),
            ),
            ("entitlement", lambda c=customer: entitlement_check(customer=c, feature_key="burst-tokens", now=now)),
        ):
            samples = []
            for _ in range(args.reads):
                t = time.perf_counter()
                fn()
                samples.append((time.perf_counter() - t) * 1000)
            p50, p95 = statistics.median(samples), percentile(samples, 95)
            lines.append(f"  {what:<12} {name:<9} p50 {p50:9.2f} ms   p95 {p95:9.2f} ms")
    for thread in workers:
        thread.join()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=340_000)
    parser.add_argument("--heavy", type=int, default=300_000)
    parser.add_argument("--ordinary", type=int, default=200)
    parser.add_argument("--reads", type=int, default=40)
    args = parser.parse_args()
    setup_django()
    from metering.partitions import event_partitions_ensure, month_start

    now = datetime.now(UTC)
    month = month_start(now)
    event_partitions_ensure(now=now)
    meter, customers = fixtures(month)
    out = run("baseline (no refresh since the burst)", args, month, now, meter, customers, False)
    out += run("refresh queued by the batches (1 s)", args, month, now, meter, customers, True)
    print("\n".join(out))
    print("target: usage and entitlement p95 < 5 ms right after the burst, heavy and ordinary customer")


if __name__ == "__main__":
    main()
