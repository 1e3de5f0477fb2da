"""``python manage.py catalog_export [--output FILE]``: the whole catalog as YAML (catalog.as_code)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from catalog.as_code import catalog_export, catalog_yaml_dump


class Command(BaseCommand):
    help = "Write every meter, feature, plan and plan version as YAML (stdout, or --output FILE)."

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", default=None, help="File to write (default: standard output)")

    def handle(self, *args, output=None, **options):
        text = catalog_yaml_dump(catalog_export())
        if output:
            Path(output).write_text(text, encoding="utf-8")
            self.stderr.write(f"catalog_export: wrote {output}")
        else:
            self.stdout.write(text, ending="")
