"""The main job for a newcomer: migrate, load the demo, run billing, create logins, start the server.

Safe to run twice: every step is an upsert or idempotent, the API key included. Keys are stored hashed, so the
demo keeps its key's raw value in ``.demo/api-key`` (git-ignored, readable by its owner only) and prints the same
key on every run while it is still valid. Without that file (a new checkout on the same database) or with a
revoked key, a new key is made, the earlier demo keys are revoked, and the command says so.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.urls import reverse
from django.utils import timezone

DEMO_USER = "finance"
DEMO_PASSWORD = "finance-demo"
DEMO_KEY_NAME = "demo"
DEMO_KEY_FILE = settings.BASE_DIR / ".demo" / "api-key"


class Command(BaseCommand):
    help = "Set up and start the demo back office (embedded PostgreSQL unless DATABASE_URL is set)."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("DEMO_ADDR", "127.0.0.1:8000"))
        parser.add_argument("--no-serve", action="store_true", help="Prepare everything but do not start the server")
        parser.add_argument(
            "--scale",
            type=float,
            default=1.0,
            help="Customers per plan family = max(1, round(2 x scale)); default 1",
        )

    def handle(self, *args, addr: str, no_serve: bool, scale: float, **options):
        from backoffice.demo import demo_load

        self.stdout.write("1/4 migrating the database…")
        call_command("migrate", verbosity=0)
        with open(os.devnull, "w") as devnull:
            call_command("setup_periodic_tasks", stdout=devnull)
        self.stdout.write("2/4 loading the demo (catalog, customers, three months of usage, billing month by month)…")
        demo_load(stdout=self.stdout, scale=scale)
        self.stdout.write("3/4 creating the finance login and an API key…")
        self._finance_user()
        raw_key, note = self._api_key()
        self.stdout.write("\n".join(self._where_to_go(addr, raw_key, note)))
        if no_serve:
            return
        self.stdout.write(f"4/4 starting the server on http://{addr}/ (Ctrl-C to stop)")
        call_command("runserver", addr, use_reloader=False)

    def _finance_user(self) -> None:
        """The ``finance`` login: staff, in the "Finance admin" group (and superuser, to see everything)."""
        from backoffice.roles import FINANCE_ADMIN

        user_model = get_user_model()
        user, created = user_model.objects.get_or_create(username=DEMO_USER, defaults={"email": "finance@example.com"})
        if created or not user.check_password(DEMO_PASSWORD):
            user.set_password(DEMO_PASSWORD)
        user.is_staff = True
        user.is_superuser = True
        user.save()
        group, _ = Group.objects.get_or_create(name=FINANCE_ADMIN)
        user.groups.add(group)

    def _api_key(self) -> tuple[str, str]:
        """The demo's key and what happened to it: the one kept in ``DEMO_KEY_FILE`` while it is still valid, else a
        new one (earlier demo keys revoked), kept there for the next run."""
        from core.auth import api_key_create, hash_key
        from core.models import ApiKey

        kept = DEMO_KEY_FILE.read_text().strip() if DEMO_KEY_FILE.exists() else ""
        if kept and ApiKey.objects.filter(name=DEMO_KEY_NAME, hashed_key=hash_key(kept), revoked=False).exists():
            return kept, "the same key as the last run"
        revoked = ApiKey.objects.filter(name=DEMO_KEY_NAME, revoked=False).update(
            revoked=True, revoked_at=timezone.now()
        )
        _, raw_key = api_key_create(name=DEMO_KEY_NAME)
        DEMO_KEY_FILE.parent.mkdir(exist_ok=True)
        DEMO_KEY_FILE.touch(mode=0o600)
        DEMO_KEY_FILE.write_text(raw_key + "\n")
        note = f"a new key, kept in {DEMO_KEY_FILE.relative_to(settings.BASE_DIR)} for the next runs"
        if revoked:
            note += f"; {revoked} earlier demo key{'s' if revoked > 1 else ''} revoked"
        return raw_key, note

    @staticmethod
    def _second_wave_pages(base: str) -> list[str]:
        """Customer pages that show a coupon, a timezone, a negotiated price and a trial (each only when loaded)."""
        from customers.models import Customer

        pages = (
            ("metricly", "A coupon:             ", "LAUNCH50, 50% off its first analytics invoice"),
            ("podcast-lab", "A customer's timezone:", "America/Los_Angeles: periods at local midnight"),
            ("byte-works", "A negotiated price:   ", "0.03 per standard request instead of 0.04"),
            ("parcel-track", "A trial:              ", "14 days on API Pro v2, then the rest of the month"),
        )
        found = dict(Customer.objects.filter(external_id__in=[p[0] for p in pages]).values_list("external_id", "pk"))
        return [
            f"  {label} {base}{reverse('admin:customers_customer_change', args=[found[key]])}   ({why})"
            for key, label, why in pages
            if key in found
        ]

    def _where_to_go(self, addr: str, raw_key: str, key_note: str = "") -> list[str]:
        from invoicing.models import Invoice
        from wallets.models import Wallet

        base = f"http://{addr}"
        lines = [
            "",
            f"{settings.PRODUCT_NAME} is ready.",
            f"  Admin (the dashboard):  {base}/admin/   user {DEMO_USER}, password {DEMO_PASSWORD}",
        ]
        tiered = (
            Invoice.objects.filter(customer__external_id="narrator-studio", lines__kind="usage", lines__amount__gt=0)
            .order_by("billing_boundary_at")
            .first()
        )
        if tiered is not None:
            url = reverse("admin:invoicing_invoice_change", args=[tiered.pk])
            lines.append(f"  An invoice with tiers: {base}{url}   (voice overage past the included characters)")
        wallet = Wallet.objects.filter(customer__external_id="growth-gurus").order_by("id").first()
        if wallet is not None:
            url = reverse("admin:wallets_wallet_change", args=[wallet.pk])
            lines.append(f"  A wallet with rollover: {base}{url}   (2,000 credits a month, up to 2,000 carried)")
        draft = Invoice.objects.filter(status=Invoice.Status.DRAFT).order_by("id").first()
        if draft is not None:
            url = reverse("admin:invoicing_invoice_change", args=[draft.pk])
            lines.append(f"  A draft to review:     {base}{url}   (finalize it from the admin)")
        lines += self._second_wave_pages(base)
        lines += [
            f"  API docs:              {base}/api/docs/",
            f"  API key:               {raw_key}" + (f"   ({key_note})" if key_note else ""),
            f"  Try:   curl -H 'Authorization: Bearer {raw_key}' {base}/api/v1/customers/scoreapi/upcoming_invoice",
            f"         curl -H 'Authorization: Bearer {raw_key}' {base}/api/v1/customers/scoreapi/usage",
            "  Guides: docs/README.md (pricing cookbook, billing rules, API quickstart, operations)",
            "",
        ]
        return lines
