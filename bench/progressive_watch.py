"""Benchmark: one pass of the progressive billing watch, beside the invoice run (by hand, never in the suite).

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/billing_bench_progressive \\
        .venv/bin/python bench/progressive_watch.py [--subscriptions 10000] [--events 10000000] [--skip-setup]
        [--crossings]

Same data as ``bench/invoice_run.py`` (its setup: one plan with a monthly fee and three usage prices, N calendar
subscriptions from Jan 1 2026, E events spread over January), with progressive billing thresholds on the plan's
version, and the hourly usage rollup built as the scheduled ``metering.usage_rollup_refresh`` keeps it. Then:

1. **the watch pass** (``progressive_watch``) as of Jan 31 23:30, the steady state: every subscription is
   evaluated (its usage so far from the rollup plus the open hour) and none has reached a new level;
2. with ``--crossings``, a second pass with a threshold every subscription has reached: each one is locked,
   evaluated exactly and gets its progressive invoice (the worst case, every customer crossing at once);
3. **the invoice run** of the Feb 1 boundary for the same subscriptions (one worker, as ``invoice_run.py``).

Printed: the pass time and subscriptions evaluated per second, beside the invoice run's invoices per second.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/billing_bench_progressive")

from bench.common import setup_django  # noqa: E402

WATCH_AT = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)
NEVER_REACHED = [{"amount": "1000000000.00", "recurring": False}]
ALWAYS_REACHED = [{"amount": "0.01", "recurring": False}]


def thresholds_set(value: list[dict]) -> None:
    from catalog.models import PlanVersion

    PlanVersion.objects.filter(plan__key="bench-plan").update(progressive_thresholds=value)


def watch_pass(label: str) -> tuple[float, int, int]:
    from invoicing.services.progressive import progressive_watch

    outcome = progressive_watch(now=WATCH_AT)
    rate = outcome.evaluated / outcome.seconds if outcome.seconds else 0.0
    print(
        f"watch pass ({label}): {outcome.evaluated:,} subscriptions evaluated in {outcome.seconds:.2f}s "
        f"= {rate:,.0f}/s; {outcome.crossings:,} crossings, {len(outcome.invoices):,} progressive invoices, "
        f"{len(outcome.failures)} failures",
        flush=True,
    )
    return outcome.seconds, outcome.evaluated, len(outcome.invoices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--skip-setup", action="store_true", help="reuse the data of a previous run")
    parser.add_argument("--crossings", action="store_true", help="also time a pass where every subscription crosses")
    args = parser.parse_args()
    setup_django()
    from bench import invoice_run
    from metering.models import Event

    if not args.skip_setup:
        invoice_run.setup(args.subscriptions, args.events)
    invoice_run.reset_billing()
    invoice_run.rollup(True)
    events = Event.objects.count()
    thresholds_set(NEVER_REACHED)
    steady, evaluated, _ = watch_pass("steady state, nothing reached")
    crossing = None
    if args.crossings:
        thresholds_set(ALWAYS_REACHED)
        t0 = time.perf_counter()
        _, _, issued = watch_pass("every subscription crosses")
        crossing = (time.perf_counter() - t0, issued)
        invoice_run.reset_billing()
        thresholds_set(NEVER_REACHED)
    run = invoice_run.run(1)
    print(
        "\nresults\n"
        f"  sizes            {evaluated:,} subscriptions with thresholds x 3 usage prices, {events:,} events "
        "(hourly rollup plus the open hour)\n"
        f"  watch pass       {steady:.2f}s ({evaluated / steady if steady else 0:,.0f} subscriptions/s), "
        "nothing reached\n"
        + (
            f"  all crossing     {crossing[0]:.1f}s for {crossing[1]:,} progressive invoices "
            f"({crossing[1] / crossing[0] if crossing[0] else 0:,.0f}/s)\n"
            if crossing
            else ""
        )
        + f"  invoice run      {run['rate']:,.0f} invoices/s ({run['created']:,} in {run['elapsed']:.1f}s, 1 worker)",
        flush=True,
    )


if __name__ == "__main__":
    main()
