from django.core.management.base import BaseCommand, CommandError

from core.auth import api_key_create


class Command(BaseCommand):
    help = "Create an API key. The key is printed once, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--scopes", default="", help="Comma-separated: ingest,read,write (default: all)")

    def handle(self, *args, name, scopes, **options):
        wanted = [s.strip() for s in scopes.split(",") if s.strip()] or None
        try:
            key, raw = api_key_create(name=name, scopes=wanted)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Created API key '{key.name}' (prefix {key.prefix}, scopes {','.join(key.scopes)}).")
        self.stdout.write("Store it now: it is not shown again.")
        self.stdout.write(raw)
