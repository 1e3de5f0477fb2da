"""``python manage.py catalog_apply FILE [--dry-run] [--publish]``: print the diff, create what is missing."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from catalog.as_code import catalog_apply, catalog_yaml_load
from catalog.errors import CatalogInvalid
from core.errors import ValidationFailed


class Command(BaseCommand):
    help = (
        "Compare a catalog YAML file with the database, print what changes (added, changed, unchanged) and create "
        "what is missing: new versions as drafts unless --publish; nothing is edited or deleted."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="A catalog file written by catalog_export (or by hand)")
        parser.add_argument("--dry-run", action="store_true", help="Print the diff, save nothing")
        parser.add_argument("--publish", action="store_true", help="Publish the versions it creates")

    def handle(self, *args, file, dry_run=False, publish=False, **options):
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"{file}: {exc.strerror or exc}") from None
        try:
            report = catalog_apply(data=catalog_yaml_load(text), dry_run=dry_run, publish=publish, now=timezone.now())
        except CatalogInvalid as exc:
            lines = [f"  {path}: {message}" for path, messages in exc.errors.items() for message in messages]
            raise CommandError(f"{file} is not valid; nothing was saved:\n" + "\n".join(lines)) from None
        except ValidationFailed as exc:
            raise CommandError(f"{file}: {exc.field + ': ' if exc.field else ''}{exc.message}") from None
        for line in report.lines(verbose=options.get("verbosity", 1) >= 2):
            self.stdout.write(line)
