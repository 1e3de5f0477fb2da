"""The back office fits a laptop's screen: every list and the main object pages of the demo at 1400 x 1000.

A finance admin (the widest pages: action checkboxes, every filter) opens every admin list and the pages finance
works in: the dashboard, invoices (one with a tier table, a draft), the upcoming invoice, customers, a wallet with
its grants and ledger, a subscription, a plan, a published version and a draft being edited, a price with its tier
rows, a meter, an event, the add pages of a version and a subscription. On each page the document is no wider than
the window (no horizontal scroll bar) and no panel cuts its content (a table wider than its scrolling box hides
columns, as the price list once hid its prices). Screenshots of the dashboard, an invoice, a wallet and a customer
go to ``artifacts/browser/``.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.db import connection
from django.urls import reverse

from backoffice.demo import demo_load
from backoffice.roles import FINANCE_ADMIN, roles_sync
from catalog.models import PlanVersion, Price
from catalog.services import plan_version_draft_from
from customers.models import Customer, Subscription
from invoicing.models import Invoice
from metering.models import Event, Meter
from wallets.models import CreditGrant, Wallet

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NOW = datetime(2026, 4, 15, tzinfo=UTC)
PASSWORD = "correct-horse-battery-9"

# The page's width, and each box that scrolls or clips sideways with content wider than itself (form fields and
# icon links that hide their text by indenting it away are not content).
MEASURE = """() => {
  const cut = [];
  for (const el of document.querySelectorAll('body *')) {
    if (['INPUT', 'TEXTAREA', 'SELECT', 'OPTION'].includes(el.tagName) || el.offsetParent === null) continue;
    const style = getComputedStyle(el);
    if (style.overflowX === 'visible' || style.textIndent.startsWith('-') || el.clientWidth <= 20) continue;
    if (el.scrollWidth > el.clientWidth + 1) {
      const name = el.id ? '#' + el.id : el.tagName.toLowerCase() + [...el.classList].map(c => '.' + c).join('');
      cut.push(`${name} shows ${el.clientWidth} of ${el.scrollWidth} px`);
    }
  }
  return {page: document.documentElement.scrollWidth, window: window.innerWidth, cut};
}"""


def _change(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def _pages(user) -> dict[str, str]:
    """Name -> path: every admin list the user may open, then the object pages finance works in."""
    pages = {"dashboard": "/admin/"}
    for model in admin.site._registry:
        if not user.has_perm(f"{model._meta.app_label}.view_{model._meta.model_name}"):
            continue  # users and groups: not a finance page
        pages[f"list of {model._meta.verbose_name_plural}"] = reverse(
            f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"
        )
    tiered = Invoice.objects.get(
        customer__external_id="narrator-studio", billing_boundary_at=datetime(2026, 2, 1, tzinfo=UTC)
    )
    draft_version = PlanVersion.objects.get(plan__key="api-pro", status=PlanVersion.Status.DRAFT)
    pages.update(
        {
            "invoice": _change(tiered),  # usage over the included characters: a tier table in "why"
            "draft invoice": _change(Invoice.objects.get(status=Invoice.Status.DRAFT)),
            "taxed invoice": _change(Invoice.objects.filter(customer__external_id="scoreapi").order_by("-pk").first()),
            "upcoming invoice": reverse("admin:invoicing_invoice_upcoming", args=[tiered.customer_id]),
            "customer": _change(Customer.objects.get(external_id="growth-gurus")),
            "customer with tax": _change(Customer.objects.get(external_id="scoreapi")),
            "wallet": _change(Wallet.objects.get(customer__external_id="growth-gurus")),
            "credit grant": _change(CreditGrant.objects.order_by("pk").first()),
            "subscription": _change(Subscription.objects.get(customer__external_id="scoreapi")),
            "plan": _change(draft_version.plan),
            "published version": _change(PlanVersion.objects.get(plan__key="enrichment-starter")),
            "draft version": _change(draft_version),
            "draft price with tiers": _change(draft_version.prices.get(model=Price.Model.TIERED)),
            "meter": _change(Meter.objects.get(key="code-requests-thinking")),
            "event": _change(Event.objects.order_by("pk").first()),
            "new version": reverse("admin:catalog_planversion_add"),
            "new subscription": reverse("admin:customers_subscription_add"),
        }
    )
    return pages


def test_every_list_and_main_page_fits_a_1400_px_window(new_page, screenshot):
    demo_load(stdout=io.StringIO(), scale=0.5, now=NOW)
    plan_version_draft_from(version=PlanVersion.objects.get(plan__key="api-pro", number=2), now=NOW)
    with connection.cursor() as cursor:
        # The event list pages by PostgreSQL's row estimate, which autovacuum keeps in production; a table filled a
        # moment ago has none yet (the list would render every event on one page).
        cursor.execute(f"ANALYZE {Event._meta.db_table}")
    roles_sync()  # the groups' permissions (transactional tests start from a flushed database)
    user = User.objects.create_user("fiona", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=FINANCE_ADMIN))
    pages = _pages(User.objects.get(pk=user.pk))  # fresh: no cached permissions

    page = new_page()
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", "fiona")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#billing-dashboard")

    problems = []
    for name, path in pages.items():
        response = page.goto(path)
        assert response is not None and response.status == 200, (name, path)
        measured = page.evaluate(MEASURE)
        if measured["page"] > measured["window"]:
            wide, window = measured["page"], measured["window"]
            problems.append(f"{name} ({path}): the page is {wide} px wide in a {window} px window")
        problems += [f"{name} ({path}): {cut}" for cut in measured["cut"]]
        if name in ("dashboard", "invoice", "wallet", "customer"):
            screenshot(page, f"fit-{name}")
    assert len(pages) > 40
    assert not problems, "\n".join(problems)
