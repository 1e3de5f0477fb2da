import sys

from django.core.management.base import BaseCommand, CommandError

from core.errors import ValidationFailed
from invoicing.services.run import as_of_parse
from webhooks.retention import DEFAULT_DAYS, webhooks_prune


class Command(BaseCommand):
    help = (
        "Delete webhook deliveries delivered more than --older-than-days ago (default 90) and the events left "
        "without a delivery; failed deliveries are kept unless --include-failed; pending ones always. "
        "Prints a one-line summary (docs/webhooks.md, Retention)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than-days", type=int, default=DEFAULT_DAYS, help="Age in days (1-3650).")
        parser.add_argument(
            "--include-failed", action="store_true", help="Also delete failed deliveries whose last try is that old."
        )
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")
        parser.add_argument("--now", default=None, help="ISO 8601 instant the age counts from (default: now).")

    def handle(self, *args, older_than_days, include_failed, dry_run, now=None, **options):
        try:
            as_of = as_of_parse(now)
        except ValueError as exc:
            raise CommandError(f"--now: {exc}") from None
        show = options.get("verbosity", 1) >= 1 and sys.stderr.isatty()

        shown: list[str] = []

        def progress(what: str, done: int) -> None:
            if show:
                if shown and shown[-1] != what:
                    sys.stderr.write("\n")
                shown.append(what)
                sys.stderr.write(f"\r{what} deleted: {done:,}")
                sys.stderr.flush()

        try:
            summary = webhooks_prune(
                now=as_of,
                older_than_days=older_than_days,
                include_failed=include_failed,
                dry_run=dry_run,
                progress=progress,
            )
        except ValidationFailed as exc:
            raise CommandError(f"--older-than-days: {exc.message}") from None
        if shown:
            sys.stderr.write("\n")
        self.stdout.write(f"prune_webhooks as of {as_of.isoformat()}: {summary.line()}")
