import sys

from django.core.management.base import BaseCommand, CommandError

from invoicing.services.run import as_of_parse
from webhooks.services import deliveries_send_due


class Command(BaseCommand):
    help = (
        "Send every webhook delivery due at or before --now (default: the current time): new events, and retries "
        "whose next attempt is due. Prints a one-line summary."
    )

    def add_arguments(self, parser):
        parser.add_argument("--now", default=None, help="ISO 8601 instant, e.g. 2026-02-01T00:00:00Z")

    def handle(self, *args, now=None, **options):
        try:
            as_of = as_of_parse(now)
        except ValueError as exc:
            raise CommandError(f"--now: {exc}") from None
        show = options.get("verbosity", 1) >= 1 and sys.stderr.isatty()

        def progress(done: int) -> None:
            if show:
                sys.stderr.write(f"\rdeliveries tried: {done}")
                sys.stderr.flush()

        summary = deliveries_send_due(now=as_of, progress=progress)
        if show and summary.tried:
            sys.stderr.write("\n")
        self.stdout.write(f"deliver_webhooks as of {as_of.isoformat()}: {summary.line()}")
