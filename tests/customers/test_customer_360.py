"""The customer 360 panel on the customer's admin page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from catalog.models import Plan
from catalog.services import feature_create, plan_version_create
from invoicing.services import subscription_start
from metering.models import Event
from metering.services import meter_create
from tests.factories.customers import CustomerFactory
from wallets.services import wallet_create, wallet_grant_create

pytestmark = pytest.mark.django_db


def _acme_with_history():
    """Acme on Pro ($10.00 a month in advance, $0.50 a call) since this month's start, 40 calls, 500 credits."""
    now = timezone.now()
    month_start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    meter_create(key="calls", name="API calls", event_name="api_call", aggregation="count")
    feature_create(key="calls", name="API calls", type="metered", meter="calls")
    plan = Plan.objects.create(key="pro", name="Pro", currency="USD", interval="month")
    plan_version_create(
        plan=plan,
        prices=[
            {"name": "Platform fee", "model": "flat_fee", "amount": "10.00"},
            {"name": "Calls", "model": "per_unit", "meter": "calls", "unit_amount": "0.50"},
        ],
        entitlements=[{"feature": "calls", "limit": "100"}],
        publish=True,
        effective_from=datetime(2020, 1, 1, tzinfo=UTC),
    )
    customer = CustomerFactory(external_id="acme", name="Acme")
    subscription_start(
        customer=customer, plan=plan, start_at=month_start, billing="calendar", pinned_version=None, now=now
    )
    # 40 calls so far this period
    Event.objects.bulk_create(
        Event(
            customer_external_id="acme",
            event_id=f"c{i}",
            event_name="api_call",
            timestamp=month_start + timedelta(seconds=i),
        )
        for i in range(40)
    )
    wallet = wallet_create(customer=customer, name="Prepaid", currency="USD", conversion_rate=Decimal("1"))
    wallet_grant_create(wallet=wallet, credits=Decimal("500"), kind="promotional", effective_at=now, now=now)
    return customer


def test_customer_page_shows_subscription_usage_wallets_invoices_and_preview(admin_client):
    customer = _acme_with_history()
    page = admin_client.get(f"/admin/customers/customer/{customer.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="customer-360"' in html
    # usage bar: 40 of 100 calls = 40% wide
    assert "40 / 100" in html and "width: 40%" in html
    # wallet: 500 promotional credits; the first invoice ($10.00 in advance) was issued at start
    assert ">Prepaid</a>" in html and ">500<" in html
    assert "$10.00" in html
    # upcoming preview: 40 calls × $0.50 = $20.00 in arrears + next month's $10.00 fee = $30.00
    assert "$20.00" in html and "$30.00" in html


def test_support_sees_usage_and_wallets_but_no_invoice_amounts(client):
    """Regression: Support (no invoicing permission) saw invoice totals, amounts due, payments and the upcoming
    invoice on the customer page."""
    from django.contrib.auth.models import Group, User

    from backoffice.roles import SUPPORT, roles_sync

    roles_sync()
    customer = _acme_with_history()
    user = User.objects.create_user("support", password="pw-support-1", is_staff=True)
    user.groups.add(Group.objects.get(name=SUPPORT))
    client.force_login(user)
    html = client.get(f"/admin/customers/customer/{customer.pk}/change/").content.decode()
    assert 'id="customer-360"' in html and "40 / 100" in html and ">Prepaid</a>" in html
    assert "<h2>Invoices" not in html and "Upcoming invoice" not in html and "Payments and credit notes" not in html
    assert "$10.00" not in html and "$20.00" not in html and "$30.00" not in html


def test_open_due_is_summed_per_currency_over_finalized_invoices_only():
    from backoffice.customer_360 import customer_overview
    from invoicing.models import Invoice

    customer = CustomerFactory(external_id="due-co")
    for currency, due, status in [
        ("USD", "10.00", Invoice.Status.FINALIZED),
        ("USD", "2.50", Invoice.Status.FINALIZED),
        ("EUR", "7.00", Invoice.Status.FINALIZED),
        ("USD", "99.00", Invoice.Status.DRAFT),  # not yet owed
    ]:
        Invoice.objects.create(
            customer=customer, currency=currency, amount_due=Decimal(due), status=status, reason=Invoice.Reason.ONE_OFF
        )
    overview = customer_overview(customer=customer, now=timezone.now())
    # EUR 7.00; USD 10.00 + 2.50 = 12.50 (the draft's 99.00 is left out); currencies in code order
    assert overview["open_due"] == ["€7.00", "$12.50"]


def _admin_links(html: str) -> set[str]:
    """Every admin page a page links to (hrefs under /admin/, without the logout form and static files)."""
    import re

    links = set(re.findall(r'href="(/admin/[^"#]*)"', html))
    return {link.replace("&amp;", "&") for link in links if "/logout/" not in link}


def test_support_is_never_offered_a_link_to_a_page_its_role_may_not_open(client):
    """Regression: on the customer page Support saw links (the plan, the subscription's cancel page) that answer
    403; the dashboard linked to the billing run and the event log. Every admin link on the customer, subscription
    and wallet pages and the dashboard must open for the role that sees it."""
    from django.contrib.auth.models import Group, User

    from backoffice.roles import SUPPORT, roles_sync
    from customers.models import Subscription
    from wallets.models import Wallet

    roles_sync()
    customer = _acme_with_history()
    Event.objects.create(customer_external_id="ghost", event_id="g1", event_name="api_call", timestamp=timezone.now())
    subscription = Subscription.objects.get(customer=customer)
    wallet = Wallet.objects.get(customer=customer)
    user = User.objects.create_user("support", password="pw-support-1", is_staff=True)
    user.groups.add(Group.objects.get(name=SUPPORT))
    client.force_login(user)

    pages = [
        f"/admin/customers/customer/{customer.pk}/change/",
        f"/admin/customers/subscription/{subscription.pk}/change/",
        f"/admin/wallets/wallet/{wallet.pk}/change/",
        "/admin/",
    ]
    seen = set()
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        seen |= _admin_links(response.content.decode())
    # the pages do link somewhere (the subscription, the wallet, the customer)
    assert f"/admin/customers/subscription/{subscription.pk}/change/" in seen
    assert f"/admin/wallets/wallet/{wallet.pk}/change/" in seen
    refused = {link: client.get(link).status_code for link in sorted(seen)}
    assert {link: code for link, code in refused.items() if code == 403} == {}
    # the plan is named, not linked
    html = client.get(f"/admin/customers/subscription/{subscription.pk}/change/").content.decode()
    assert "Pro" in html and "/admin/catalog/" not in html and "/cancel/" not in html


def test_customer_panel_links_follow_each_permission(client):
    """A role that may see customers but not their subscriptions or wallets gets names, not links."""
    from django.contrib.auth.models import Permission, User

    customer = _acme_with_history()
    user = User.objects.create_user("reader", password="pw-reader-1", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_customer"))
    client.force_login(user)
    html = client.get(f"/admin/customers/customer/{customer.pk}/change/").content.decode()
    assert 'id="customer-360"' in html and "Prepaid" in html
    assert "/admin/customers/subscription/" not in html and "/admin/wallets/wallet/" not in html
