import sys
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from invoicing.services import billing_run_execute
from invoicing.services.run import as_of_parse
from webhooks.alerts import alerts_evaluate


def parse_now(value: str | None) -> datetime:
    try:
        return as_of_parse(value)
    except ValueError as exc:
        raise CommandError(f"--now: {exc}") from None


class Command(BaseCommand):
    help = (
        "Run all scheduled billing work due at or before --now (default: the current time), idempotently. "
        "Prints a one-line summary naming what failed; each failure in full on stderr."
    )

    def add_arguments(self, parser):
        parser.add_argument("--now", default=None, help="ISO 8601 instant, e.g. 2026-02-01T00:00:00Z")
        parser.add_argument("--customer", default=None, help="Limit the work to one customer's external id")

    def handle(self, *args, now=None, customer=None, **options):
        verbosity = options.get("verbosity", 1)
        # Progress on stderr for long runs (every 1% or 100 subscriptions), so stdout keeps one summary line.
        show = verbosity >= 1 and sys.stderr.isatty()

        def progress(done: int, total: int) -> None:
            step = max(1, min(100, total // 100))
            if show and (done % step == 0 or done == total):
                sys.stderr.write(f"\rbilling subscriptions: {done}/{total}")
                if done == total:
                    sys.stderr.write("\n")
                sys.stderr.flush()

        summary = billing_run_execute(now=parse_now(now), customer_external_id=customer, progress=progress)
        alerts = alerts_evaluate(now=summary.as_of, customer_external_id=customer)  # usage and spend alerts
        summary.failures += alerts.failures
        self.stdout.write(
            f"run_billing {summary.line()}" + (f" ({alerts.triggers} alert triggers)" if alerts.alerts else "")
        )
        # Every failure in full on stderr (the line names the first few): a failed boundary stays due.
        for failure in summary.failures:
            self.stderr.write(f"run_billing failure: {failure}")
