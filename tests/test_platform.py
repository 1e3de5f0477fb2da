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
