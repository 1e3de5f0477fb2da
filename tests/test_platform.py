"""Platform: the finance dashboard, roles, request guards and the OpenAPI scope notes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from backoffice import dashboard
from backoffice.roles import FINANCE_ADMIN, FINANCE_VIEWER, SUPPORT, roles_sync
from invoicing.models import Invoice
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db


def _invoice(customer, *, status, total, due, issued_at, due_at=None, currency="USD"):
    return Invoice.objects.create(
        customer=customer,
        currency=currency,
        status=status,
        total=total,
        subtotal=total,
        amount_due=due,
        issued_at=issued_at,
        due_at=due_at,
        finalize_after=issued_at,
        reason=Invoice.Reason.ONE_OFF,
    )


def test_roles_are_groups_with_the_right_permissions():
    roles_sync()
    admin = Group.objects.get(name=FINANCE_ADMIN)
    viewer = Group.objects.get(name=FINANCE_VIEWER)
    support = Group.objects.get(name=SUPPORT)
    admin_perms = {f"{p.content_type.app_label}.{p.codename}" for p in admin.permissions.all()}
    viewer_perms = {p.codename for p in viewer.permissions.all()}
    support_perms = {f"{p.content_type.app_label}.{p.codename}" for p in support.permissions.all()}
    assert {"invoicing.change_invoice", "catalog.add_plan", "wallets.grant_credits_unlimited"} <= admin_perms
    # the viewer may only look
    assert viewer_perms and all(c.startswith("view_") for c in viewer_perms)
    # support: customers and wallets, never the catalog or invoices
    assert "wallets.grant_credits" in support_perms and "customers.change_customer" in support_perms
    assert not any(p.startswith(("catalog.", "invoicing.")) for p in support_perms)
    assert "wallets.grant_credits_unlimited" not in support_perms


def test_dashboard_shows_receivables_status_counts_and_revenue(admin_client):
    now = timezone.now()
    usd = CustomerFactory(name="Acme")
    # Open receivables: 124.00 due in the future + 50.00 overdue = 174.00 due, 50.00 overdue.
    _invoice(
        usd,
        status=Invoice.Status.FINALIZED,
        total=Decimal("124.00"),
        due=Decimal("124.00"),
        issued_at=now,
        due_at=now + timedelta(days=10),
    )
    _invoice(
        usd,
        status=Invoice.Status.FINALIZED,
        total=Decimal("50.00"),
        due=Decimal("50.00"),
        issued_at=now - timedelta(days=40),
        due_at=now - timedelta(days=10),
    )
    _invoice(usd, status=Invoice.Status.PAID, total=Decimal("99.00"), due=Decimal("0"), issued_at=now)
    Invoice.objects.create(customer=usd, currency="USD", reason=Invoice.Reason.ONE_OFF)  # a draft waiting for review

    due = dashboard.amounts_due(now)
    assert due == [{"currency": "USD", "due": "$174.00", "overdue": "$50.00", "count": 2, "overdue_count": 1}]
    buckets, currencies = dashboard.revenue_by_month(now)
    assert currencies == ["USD"] and len(buckets) == 12
    # this month's invoiced revenue: 124.00 + 99.00 (the draft is not revenue) = 223.00
    assert buckets[-1].amounts["USD"] == Decimal("223.00")

    response = admin_client.get("/admin/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "billing-dashboard" in body and "$174.00" in body and "<svg" in body
    assert "Drafts waiting for review" in body and "Events for unknown customers" in body


def test_support_sees_the_dashboard_without_invoice_amounts_or_revenue(client):
    """Regression: Support (no invoicing permission) saw receivables, revenue and drafts on the front page."""
    now = timezone.now()
    _invoice(
        CustomerFactory(name="Acme"),
        status=Invoice.Status.FINALIZED,
        total=Decimal("124.00"),
        due=Decimal("124.00"),
        issued_at=now,
        due_at=now + timedelta(days=10),
    )
    roles_sync()
    user = User.objects.create_user("support", password="pw-support-1", is_staff=True)
    user.groups.add(Group.objects.get(name=SUPPORT))
    client.force_login(user)
    response = client.get("/admin/")
    body = response.content.decode()
    assert response.status_code == 200 and "billing-dashboard" in body and "Wallets below threshold" in body
    assert "$124.00" not in body and "Revenue by month in" not in body  # no receivables, no chart
    assert "Amount due" not in body and "Revenue by month" not in body and "Drafts waiting" not in body
    assert response.context["dashboard"]["invoicing"] is False and "amounts_due" not in response.context["dashboard"]


def test_revenue_chart_has_one_bar_per_month():
    buckets, _ = dashboard.revenue_by_month(datetime(2026, 11, 15, tzinfo=UTC))
    svg = dashboard.revenue_chart_svg(buckets, "USD")
    assert svg.count("<rect") == 12 and buckets[0].month == datetime(2025, 12, 1, tzinfo=UTC)


def test_finance_viewer_sees_the_dashboard_but_cannot_add(client):
    roles_sync()
    user = User.objects.create_user("viewer", password="pw-viewer-1", is_staff=True)
    user.groups.add(Group.objects.get(name=FINANCE_VIEWER))
    client.force_login(user)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/catalog/plan/add/").status_code == 403


def test_oversized_body_is_413_not_500(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post("/api/v1/events/batch", {"events": [{"event_id": "x" * 2000}]}, format="json")
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]


def test_openapi_schema_names_the_scope_of_each_operation(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    operations = [op for path in schema["paths"].values() for op in path.values() if isinstance(op, dict)]
    assert operations and all(op.get("x-required-scope") in ("ingest", "read", "write") for op in operations)


def test_the_header_links_to_the_api_docs_and_the_pages_have_a_favicon(admin_client):
    """Regression: "View site" opened Django's debug 404 (the project serves no site at /); no favicon."""
    from django.contrib.staticfiles import finders

    html = admin_client.get("/admin/").content.decode()
    assert 'href="/api/docs/" id="api-docs-link">API docs</a>' in html and "View site" not in html
    assert admin_client.get("/api/docs/").status_code == 200
    assert '<link rel="icon" type="image/svg+xml" href="/static/ledgerline/favicon.svg">' in html
    path = finders.find("ledgerline/favicon.svg")
    assert path and open(path).read().startswith("<svg")
    # the sign-in page too
    admin_client.logout()
    assert "ledgerline/favicon.svg" in admin_client.get("/admin/login/").content.decode()


def test_every_admin_date_is_in_one_format_and_the_page_says_utc_once(admin_client):
    """Regression: three pages, three formats ("March 1, 2026, 2:05 p.m.", "2026-03-01 14:05", "1 Mar 2026")."""
    from django.utils import formats

    from core.instants import format_day, format_instant

    at = datetime(2026, 3, 1, 14, 5, tzinfo=UTC)
    assert format_instant(at) == "1 Mar 2026, 14:05" and format_day(at) == "1 Mar 2026"
    # Django's own columns use the same format (billing_project/formats/en).
    assert formats.date_format(at, "DATETIME_FORMAT") == "1 Mar 2026, 14:05"
    customer = CustomerFactory(name="Acme")
    Invoice.objects.create(
        reason=Invoice.Reason.BOUNDARY,
        customer=customer,
        currency="USD",
        status=Invoice.Status.FINALIZED,
        number="INV-9",
        issued_at=at,
        due_at=at + timedelta(days=14),
    )
    # the list shows the due date (the issue date is on the invoice's page, which fits the window)
    html = admin_client.get("/admin/invoicing/invoice/").content.decode()
    assert "15 Mar 2026, 14:05" in html and "p.m." not in html
    assert html.count('id="times-in-utc"') == 1
    invoice = Invoice.objects.get(number="INV-9")
    page = admin_client.get(f"/admin/invoicing/invoice/{invoice.pk}/change/").content.decode()
    assert "1 Mar 2026, 14:05" in page and "15 Mar 2026, 14:05" in page and "p.m." not in page
    assert page.count('id="times-in-utc"') == 1


def test_the_schedule_form_lists_the_registered_tasks(admin_client):
    """Regression: the beat schedule form's "Task (registered)" list was empty: nothing imports the apps' tasks
    modules in a web process, and django-celery-beat keeps the first (empty) answer."""
    from django_celery_beat.admin import PeriodicTaskForm

    stale = PeriodicTaskForm.base_fields["regtask"].widget
    stale._choices = (("", ""),)  # what the widget kept from a first look before the tasks were imported
    html = admin_client.get("/admin/django_celery_beat/periodictask/add/").content.decode()
    select = html.split('id="id_regtask"')[1].split("</select>")[0]
    for name in ("invoicing.billing_run_execute", "invoicing.subscriptions_bill", "metering.usage_rollup_refresh"):
        assert f'<option value="{name}">{name}</option>' in select
    stale._choices = None


def test_currency_filters_of_documents_list_only_currencies_in_use(admin_client):
    CustomerFactory(currency="EUR")
    for url, param in [
        ("/admin/customers/customer/", "currency__exact"),
        ("/admin/wallets/wallet/", "currency__exact"),
        ("/admin/invoicing/invoice/", "customer__currency__exact"),
        ("/admin/invoicing/payment/", "currency__exact"),
        ("/admin/invoicing/creditnote/", "currency__exact"),
    ]:
        html = admin_client.get(url).content.decode()
        assert f"{param}=JPY" not in html and f"{param}=GBP" not in html, url
        if url != "/admin/wallets/wallet/":  # no wallet exists: its filter lists nothing
            assert f"{param}=EUR" in html, url
