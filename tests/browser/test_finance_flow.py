"""A finance person's month in a real browser: catalog, customer, usage, billing, invoice, payment, PDF, roles.

Meters are defined by the product team (the metering service here); everything finance does goes through
the admin screens in headless Chromium: the plan, its version, the prices and the tier rows, publishing
with its confirmation page, the customer, the subscription, reading the invoice, recording a payment and
downloading the PDF. Usage arrives over the REST API, and billing runs through ``run_billing``.

Timing rule: creating a subscription bills only its first period (even with a past start); later boundaries
are billed by the run that reaches them. The test starts the subscription on the first of the current month
(calendar billing), records the usage in that month, and runs billing as of the first of next month
(``run_billing --now``), which is exactly what the scheduled run at that boundary does.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
import requests
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.utils import timezone

from backoffice.roles import FINANCE_ADMIN, FINANCE_VIEWER, roles_sync
from catalog.models import Plan
from catalog.services import plan_create, plan_version_create
from core.auth import api_key_create
from customers.models import Subscription
from invoicing.models import Invoice, Payment
from metering.services import meter_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-9"


def _month_start(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def _user(username: str, group: str) -> User:
    user = User.objects.create_user(username, password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def _login(page, username: str) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#billing-dashboard")


def _save(page, button: str = "_save") -> None:
    page.click(f"input[name={button}]")
    page.wait_for_selector("ul.messagelist li")
    assert not page.locator(".errornote").count(), page.inner_text("#content")


def _readonly(page, field: str) -> str:
    """The text of a read-only field on a change page."""
    return page.locator(f".field-{field} .readonly").first.inner_text().strip()


def _pick_action(page, row_text: str, action: str) -> None:
    """Tick one changelist row (found by its text) and run an admin action on it."""
    page.locator("#result_list tbody tr", has_text=row_text).locator("input.action-select").check()
    page.select_option("select[name=action]", action)
    page.click("button[name=index]")


def test_finance_month_end_in_the_browser(new_page, screenshot, live_server):
    roles_sync()  # the groups' permissions (transactional tests start from a flushed database)
    _user("fiona", FINANCE_ADMIN)
    _user("victor", FINANCE_VIEWER)
    # Defined by the product team over the API in real life; the metering service stands in for it here.
    meter_create(key="api_calls", name="API calls", event_name="api_call", aggregation="count")

    now = timezone.now()
    period_start = _month_start(now)
    period_end = _next_month(period_start)

    # 1. A finance admin logs in through the login page and lands on the dashboard.
    page = new_page()
    _login(page, "fiona")
    screenshot(page, "dashboard")

    # 2. The plan, its version with two prices, the tier rows, then publishing.
    page.goto("/admin/catalog/plan/add/")
    page.fill("#id_key", "api-pro")
    page.fill("#id_name", "API Pro")
    page.select_option("#id_currency", "USD")
    page.select_option("#id_interval", "month")
    _save(page)

    page.goto("/admin/catalog/planversion/add/")
    page.select_option("#id_plan", label="API Pro (api-pro)")
    page.fill("#id_effective_from_0", "2020-01-01")
    page.fill("#id_effective_from_1", "00:00:00")
    page.fill("#id_notes", "Launch prices")
    add_price = page.locator("#prices-group .add-row a")
    add_price.click()
    add_price.click()
    page.fill("#id_prices-0-position", "1")
    page.fill("#id_prices-0-name", "Platform fee")
    page.select_option("#id_prices-0-model", "flat_fee")
    page.select_option("#id_prices-0-timing", "in_advance")
    page.fill("#id_prices-0-amount", "20")
    page.fill("#id_prices-1-position", "2")
    page.fill("#id_prices-1-name", "API calls")
    page.select_option("#id_prices-1-model", "tiered")
    page.select_option("#id_prices-1-meter", label="API calls (api_calls)")
    page.select_option("#id_prices-1-timing", "in_arrears")
    page.select_option("#id_prices-1-tier_mode", "graduated")
    screenshot(page, "version-add")
    _save(page, "_continue")

    page.click("#prices-group a:has-text('edit tiers')")
    page.wait_for_selector("#tiers-group")
    page.locator("#tiers-group .add-row a").click()
    page.fill("#id_tiers-0-position", "1")
    page.fill("#id_tiers-0-up_to", "1000")
    page.fill("#id_tiers-0-unit_amount", "0")
    page.fill("#id_tiers-0-flat_amount", "0")
    page.fill("#id_tiers-1-position", "2")
    page.fill("#id_tiers-1-up_to", "")
    page.fill("#id_tiers-1-unit_amount", "0.01")
    page.fill("#id_tiers-1-flat_amount", "0")
    screenshot(page, "price-tiers")
    _save(page, "_continue")

    page.goto("/admin/catalog/planversion/")
    _pick_action(page, "api-pro v1", "publish_versions")
    page.wait_for_selector("text=Publishing is permanent")
    screenshot(page, "publish-confirmation")
    page.click("input[value='Yes, publish']")
    page.wait_for_selector("ul.messagelist li")
    assert "Published 1 version(s)" in page.inner_text("ul.messagelist")
    screenshot(page, "versions-published")

    # 3. The customer, then the subscription (calendar billing from the first of this month, UTC).
    page.goto("/admin/customers/customer/add/")
    page.fill("#id_external_id", "acme")
    page.fill("#id_name", "Acme Robotics")
    page.fill("#id_email", "billing@acme.example")
    page.select_option("#id_currency", "USD")
    _save(page)

    page.goto("/admin/customers/subscription/add/")
    page.select_option("#id_customer", label="Acme Robotics (acme)")
    page.select_option("#id_plan", label="API Pro (api-pro)")
    page.fill("#id_start_at", f"{period_start:%Y-%m-%d %H:%M}")
    page.select_option("#id_billing", "calendar")
    screenshot(page, "subscription-add")
    page.click("input[value='Create subscription']")
    page.wait_for_selector("ul.messagelist li")
    assert "has started" in page.inner_text("ul.messagelist")
    screenshot(page, "subscription")

    # 4. The product team records 1,500 API calls in the open period over the REST API (two batches).
    _, raw_key = api_key_create(name="product-team", scopes=["ingest"])
    for batch in range(2):
        events = [
            {
                "event_id": f"call-{batch}-{i}",
                "customer": "acme",
                "event_name": "api_call",
                "timestamp": period_start.isoformat().replace("+00:00", "Z"),
                "properties": {"model": "small"},
            }
            for i in range(750)
        ]
        response = requests.post(
            f"{live_server.url}/api/v1/events/batch",
            json={"events": events},
            headers={"Authorization": f"Bearer {raw_key}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": 750, "duplicates": 0, "rejected": []}

    # 5. The scheduled billing run at the period's end.
    out = io.StringIO()
    call_command("run_billing", "--now", period_end.isoformat(), stdout=out)
    assert "1 period boundaries, 1 invoices created" in out.getvalue() and "0 failures" in out.getvalue()
    invoice = Invoice.objects.get(customer__external_id="acme", billing_boundary_at=period_end)
    assert invoice.status == Invoice.Status.FINALIZED
    page.goto("/admin/")
    assert "1 invoice created, 1 finalized" in page.inner_text("#billing-dashboard")  # the last run's outcome
    screenshot(page, "dashboard-after-run")

    # 6. The invoice, read on its page.
    # API calls, graduated: units 1-1,000 at $0 = $0.00; units 1,001-1,500 = 500 x $0.01 = $5.00.
    # Platform fee, in advance for next month (a full calendar month, no proration) = $20.00.
    # Subtotal $5.00 + $20.00 = $25.00; no tax rates; no wallet credits -> total and amount due $25.00.
    page.goto("/admin/invoicing/invoice/?q=acme")
    row = page.locator("#result_list tbody tr", has_text=invoice.number)
    assert row.locator("td.field-total_display").inner_text() == "$25.00"
    screenshot(page, "invoices")
    page.click(f"#result_list a:text-is('{invoice.number}')")
    page.wait_for_selector("#lines-group")
    usage_row = page.locator("#lines-group tbody tr", has_text="API calls")
    fee_row = page.locator("#lines-group tbody tr", has_text="Platform fee")
    assert usage_row.locator("td.field-quantity_display").inner_text().strip() == "1,500"
    assert usage_row.locator("td.field-amount_display").inner_text().strip() == "$5.00"
    assert fee_row.locator("td.field-amount_display").inner_text().strip() == "$20.00"
    assert _readonly(page, "subtotal_display") == "$25.00"
    assert _readonly(page, "total_display") == "$25.00"
    assert _readonly(page, "amount_due_display") == "$25.00"
    assert _readonly(page, "status") == "Finalized"
    # The invoice's action buttons line up with the links beside them ("Download PDF", "History"): same top and
    # height (they sat 8 px shorter and higher).
    tools = page.locator(".object-tools li a, .object-tools li button")
    boxes = [tools.nth(i).bounding_box() for i in range(tools.count())]
    assert len(boxes) >= 4 and len({(b["y"], b["height"]) for b in boxes}) == 1, boxes
    screenshot(page, "invoice")

    # 7. A bank transfer of $25.00 recorded from the invoice's page ("Record a payment…" runs the
    # "Record an offline payment" admin action, whose confirmation page asks for the amount).
    page.click("button:has-text('Record a payment')")
    page.wait_for_selector("#id_amount")
    assert f"{invoice.number} — Acme Robotics (acme) — Finalized — total $25.00, due $25.00" in page.inner_text(
        "#content"
    )
    assert page.input_value("#id_amount") == "25.00"  # offered: everything still due
    page.fill("#id_reference", "Bank transfer 4471")
    screenshot(page, "payment-confirmation")
    page.click("input[value='Yes, record a payment']")
    page.wait_for_selector("ul.messagelist li")
    # Started from the invoice's page, the action lands back on it and says what changed.
    assert page.url.endswith(f"/admin/invoicing/invoice/{invoice.pk}/change/")
    assert f"Payment of $25.00 recorded on {invoice.number}; {invoice.number} is paid in full." in page.inner_text(
        "ul.messagelist"
    )
    assert _readonly(page, "status") == "Paid"
    assert _readonly(page, "amount_paid_display") == "$25.00"
    assert _readonly(page, "amount_due_display") == "$0.00"
    assert page.locator("button:has-text('Record a payment')").count() == 0
    screenshot(page, "invoice-paid")

    # 8. The PDF, downloaded from the invoice page.
    with page.expect_download() as download:
        page.locator("a:has-text('Download PDF')").first.click()
    assert download.value.suggested_filename == f"{invoice.number}.pdf"
    with open(download.value.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"

    # 9. A plan change from the subscription's page: "Change plan...", its preview, the confirmation. The run billed
    # next month ahead, so the change waits for that period's end; it is then canceled from the same page.
    lite = plan_create(key="api-lite", name="API Lite", currency="USD", interval="month")
    plan_version_create(
        plan=lite,
        prices=[{"name": "Platform fee", "model": "flat_fee", "amount": "8"}],
        publish=True,
        effective_from="2020-01-01T00:00:00Z",
    )
    subscription = Subscription.objects.get(customer__external_id="acme")
    page.goto(f"/admin/customers/subscription/{subscription.pk}/change/")
    page.click("a:has-text('Change plan')")
    page.wait_for_selector("#id_plan")
    page.select_option("#id_plan", label="API Lite (api-lite)")
    page.check("input[name=at][value=period_end]")
    page.click("input[value='Preview the change']")
    page.wait_for_selector("#change-preview")
    preview = page.inner_text("#content")
    # Fixed fees per year: API Lite $8.00 x 12 = $96.00 against API Pro $20.00 x 12 = $240.00, a downgrade.
    assert "A downgrade" in preview and "$96.00" in preview and "$240.00" in preview
    assert subscription.scheduled_plan_id is None
    screenshot(page, "plan-change-preview")
    page.click("input[value='Confirm: schedule the change']")
    page.wait_for_selector("ul.messagelist li")
    assert "Change to API Lite scheduled" in page.inner_text("ul.messagelist")
    assert "Changes to API Lite" in _readonly(page, "plan_change")
    screenshot(page, "plan-change-scheduled")
    page.click("a:has-text('Cancel the scheduled change')")
    page.click("input[value='Yes, cancel the scheduled change']")
    page.wait_for_selector("ul.messagelist li")
    assert "Scheduled change to API Lite canceled." in page.inner_text("ul.messagelist")
    subscription.refresh_from_db()
    assert subscription.scheduled_plan_id is None

    # 10. A finance viewer sees the same pages without any way to change them, and a POST is refused.
    viewer = new_page()
    _login(viewer, "victor")
    viewer.goto(f"/admin/invoicing/invoice/{invoice.pk}/change/")
    viewer.wait_for_selector("#lines-group")
    assert _readonly(viewer, "amount_due_display") == "$0.00"
    assert viewer.locator(".submit-row input, input[name=_save], .deletelink, .object-tools button").count() == 0
    screenshot(viewer, "viewer-invoice")
    viewer.goto("/admin/invoicing/invoice/")
    assert viewer.locator("select[name=action]").count() == 0
    plan = Plan.objects.get(key="api-pro")
    viewer.goto(f"/admin/catalog/plan/{plan.pk}/change/")
    viewer.wait_for_selector("#content-main")
    assert viewer.locator("input[name=_save], input[name=_continue], .deletelink").count() == 0
    screenshot(viewer, "viewer-plan")
    viewer.goto("/admin/catalog/plan/")
    assert viewer.locator("a.addlink, select[name=action]").count() == 0
    csrf = next(c["value"] for c in viewer.context.cookies() if c["name"] == "csrftoken")
    refused = viewer.request.post(
        f"/admin/catalog/plan/{plan.pk}/change/",
        form={
            "csrfmiddlewaretoken": csrf,
            "key": "api-pro",
            "name": "Renamed by a viewer",
            "currency": "USD",
            "interval": "month",
            "versions-TOTAL_FORMS": "1",
            "versions-INITIAL_FORMS": "1",
        },
        headers={"X-CSRFToken": csrf, "Referer": f"{live_server.url}/admin/catalog/plan/{plan.pk}/change/"},
    )
    assert refused.status == 403
    plan.refresh_from_db()
    assert plan.name == "API Pro"
    # Actions are refused too, not only hidden: a payment posted on the still-open start invoice does nothing.
    start_invoice = Invoice.objects.get(customer__external_id="acme", billing_boundary_at=period_start)
    assert start_invoice.status == Invoice.Status.FINALIZED
    ignored = viewer.request.post(
        "/admin/invoicing/invoice/",
        form={
            "csrfmiddlewaretoken": csrf,
            "action": "record_payment_action",
            "_selected_action": str(start_invoice.pk),
            "index": "0",
            "confirm": "yes",
            "amount": "20.00",
            "reference": "viewer",
        },
        headers={"X-CSRFToken": csrf},
    )
    # Accepted as a request (CSRF passed, redirected back to the list) but the viewer has no such action.
    assert ignored.status == 200 and ignored.url.endswith("/admin/invoicing/invoice/")
    start_invoice.refresh_from_db()
    assert (start_invoice.status, start_invoice.amount_paid) == (Invoice.Status.FINALIZED, 0)
    assert Payment.objects.filter(invoice=start_invoice).count() == 0
