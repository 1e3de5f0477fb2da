"""The main job for a newcomer: migrate, load the demo, run billing, create logins, start the server.

Safe to run twice: every step is an upsert or idempotent.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

DEMO_USER = "finance"
DEMO_PASSWORD = "finance-demo"


class Command(BaseCommand):
    help = "Set up and start the demo back office (embedded PostgreSQL unless DATABASE_URL is set)."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("DEMO_ADDR", "127.0.0.1:8000"))
        parser.add_argument(
            "--no-serve", action="store_true", help="Prepare everything but do not start the server"
        )

    def handle(self, *args, addr: str, no_serve: bool, **options):
        self.stdout.write("1/4 migrating the database…")
        call_command("migrate", verbosity=0)
        call_command("setup_periodic_tasks", stdout=open(os.devnull, "w"))
        self.stdout.write("2/4 loading the demo (catalog, customers, usage, billing)…")
        loader = _demo_loader()
        if loader is not None:
            loader(stdout=self.stdout)
        self.stdout.write("3/4 creating the finance login and an API key…")
        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(
            username=DEMO_USER, defaults={"email": "finance@example.com"}
        )
        if created or not user.check_password(DEMO_PASSWORD):
            user.set_password(DEMO_PASSWORD)
        user.is_staff = True
        user.is_superuser = True
        user.save()
        from billing_project.auth import api_key_create

        _, raw_key = api_key_create(name="demo")
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"{settings.PRODUCT_NAME} is ready.",
                    f"  Admin:    http://{addr}/admin/   (user {DEMO_USER}, password {DEMO_PASSWORD})",
                    f"  API docs: http://{addr}/api/docs/",
                    f"  API key:  {raw_key}",
                    f"  Try:      curl -H 'Authorization: Bearer {raw_key}' http://{addr}/api/v1/invoices",
                    "",
                ]
            )
        )
        if no_serve:
            return
        self.stdout.write(f"4/4 starting the server on http://{addr}/ (Ctrl-C to stop)")
        call_command("runserver", addr, use_reloader=False)


def _demo_loader():
    try:
        from invoicing.demo import demo_load
    except ImportError:
        return None
    return demo_load
