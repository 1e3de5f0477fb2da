from django.core.management.base import BaseCommand, CommandError

from invoicing.services.run import as_of_parse
from webhooks.alerts import alerts_evaluate


class Command(BaseCommand):
    help = "Evaluate every usage and spend alert as of --now (default: the current time). Prints a one-line summary."

    def add_arguments(self, parser):
        parser.add_argument("--now", default=None, help="ISO 8601 instant, e.g. 2026-02-01T00:00:00Z")
        parser.add_argument("--customer", default=None, help="Limit to one customer's external id")

    def handle(self, *args, now=None, customer=None, **options):
        try:
            as_of = as_of_parse(now)
        except ValueError as exc:
            raise CommandError(f"--now: {exc}") from None
        summary = alerts_evaluate(now=as_of, customer_external_id=customer)
        self.stdout.write(f"evaluate_alerts as of {as_of.isoformat()}: {summary.line()}")
        for failure in summary.failures:
            self.stderr.write(f"evaluate_alerts failure: {failure}")
