"""Finance roles enforced on screens and on admin actions: Finance admin, Finance viewer, Support."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User

from backoffice.roles import FINANCE_ADMIN, FINANCE_VIEWER, SUPPORT, roles_sync
from invoicing.models import Invoice
from tests.factories.catalog import PlanFactory
from tests.factories.customers import CustomerFactory
from wallets.models import CreditGrant
from wallets.services import wallet_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def login(client):
    roles_sync()

    def _login(role: str):
        user = User.objects.create_user(role.lower().replace(" ", "-"), password="pw-role-123", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        client.force_login(user)
        return client

    return _login


def _wallet():
    customer = CustomerFactory(external_id="acme")
    return wallet_create(customer=customer, name="Credits", currency="USD", conversion_rate=Decimal("1"))


def _grant(client, wallet, credits: str):
    return client.post(
        "/admin/wallets/wallet/",
        {"action": "grant_credits", "_selected_action": [wallet.pk], "confirm": "yes", "credits": credits,
         "kind": "promotional", "priority": "10", "expires_at": "", "name": ""},
    )


def test_support_grants_credits_up_to_the_limit_only(login, settings):
    settings.SUPPORT_GRANT_LIMIT = Decimal("500")
    wallet = _wallet()
    client = login(SUPPORT)
    # 500 credits: at the limit, granted
    assert _grant(client, wallet, "500").status_code in (200, 302)
    # 501 credits: over the limit, the form refuses and nothing is granted
    page = _grant(client, wallet, "501")
    assert page.status_code == 200 and "at most 500" in page.content.decode()
    assert list(CreditGrant.objects.values_list("credits", flat=True)) == [Decimal("500")]
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("500")


def test_support_cannot_void_or_touch_catalog_and_invoices(login):
    wallet = _wallet()
    client = login(SUPPORT)
    assert client.get("/admin/customers/customer/").status_code == 200
    assert client.get("/admin/wallets/wallet/").status_code == 200
    assert client.get("/admin/catalog/plan/").status_code == 403
    assert client.get("/admin/invoicing/invoice/").status_code == 403
    # the void action is not offered, and posting it does nothing
    page = client.get("/admin/wallets/wallet/").content.decode()
    assert "grant_credits" in page and "void_remaining_credits" not in page
    client.post("/admin/wallets/wallet/", {"action": "void_remaining_credits", "_selected_action": [wallet.pk], "confirm": "yes"})
    assert not wallet.ledger.filter(type="void").exists()


def test_finance_viewer_reads_everything_and_changes_nothing(login):
    wallet = _wallet()
    plan = PlanFactory()
    invoice = Invoice.objects.create(customer=wallet.customer, currency="USD", billing_boundary_at=datetime(2026, 1, 1, tzinfo=UTC))
    client = login(FINANCE_VIEWER)
    for url in ("/admin/", "/admin/catalog/plan/", "/admin/invoicing/invoice/", "/admin/wallets/wallet/",
                f"/admin/invoicing/invoice/{invoice.pk}/change/", f"/admin/catalog/plan/{plan.pk}/change/"):
        assert client.get(url).status_code == 200, url
    # no action is offered to a viewer on invoices or wallets; a forged action POST changes nothing
    page = client.get("/admin/invoicing/invoice/").content.decode()
    assert "finalize_action" not in page and 'name="action"' not in page
    client.post("/admin/invoicing/invoice/", {"action": "finalize_action", "_selected_action": [invoice.pk]})
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.DRAFT and invoice.number is None
    assert _grant(client, wallet, "10").status_code in (200, 302)
    assert not CreditGrant.objects.exists()
    # change forms refuse a POST
    response = client.post(f"/admin/catalog/plan/{plan.pk}/change/", {"name": "Renamed"})
    assert response.status_code == 403
    plan.refresh_from_db()
    assert plan.name != "Renamed"


def test_finance_admin_may_grant_any_amount_and_void(login, settings):
    settings.SUPPORT_GRANT_LIMIT = Decimal("500")
    wallet = _wallet()
    client = login(FINANCE_ADMIN)
    _grant(client, wallet, "5000")
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("5000")
    client.post("/admin/wallets/wallet/", {"action": "void_remaining_credits", "_selected_action": [wallet.pk], "confirm": "yes"})
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("0")
