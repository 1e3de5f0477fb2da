"""Admin pages and the invoice document for a customer outside UTC and a subscription with negotiated prices."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from catalog.models import Price
from customers.models import Customer
from invoicing.models import Invoice
from invoicing.pdf import invoice_html
from invoicing.services import subscription_start
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.factories.metering import MeterFactory

pytestmark = pytest.mark.django_db

LA = "America/Los_Angeles"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _la_subscription(overrides=None):
    version = PlanVersionFactory(published=True, number=1)
    PriceFactory(plan_version=version, name="Subscription", amount=Decimal("50.00"), position=0)
    meter = MeterFactory(key=f"calls-{version.plan.key}", name="Calls", event_name=f"call_{version.plan.key}")
    PriceFactory(
        plan_version=version,
        name="Calls",
        model=Price.Model.PER_UNIT,
        timing=Price.Timing.IN_ARREARS,
        amount=None,
        unit_amount=Decimal("0.01"),
        meter=meter,
        position=1,
    )
    customer = CustomerFactory(external_id="la", timezone=LA)
    return subscription_start(
        customer=customer,
        plan=version.plan,
        start_at=utc(2023, 2, 8),
        billing="calendar",
        pinned_version=None,
        now=utc(2023, 2, 8),
        price_overrides=overrides,
    )


def test_the_invoice_document_shows_local_dates_and_names_the_zone():
    sub = _la_subscription()
    invoice = Invoice.objects.get(subscription=sub)
    html = invoice_html(invoice)
    # Issued 2023-02-08 00:00 UTC = 7 Feb 2023, 16:00 in Los Angeles; the period is local Feb 7-28.
    assert "All dates and times are America/Los_Angeles time" in html
    assert "7 Feb 2023, 16:00" in html
    assert "Feb 7–28 2023" in html
    assert invoice.bill_to_timezone == LA
    # Issued documents keep their zone: a later change of the customer's timezone does not move its dates.
    Customer.objects.filter(pk=sub.customer_id).update(timezone="Asia/Kolkata")
    assert "7 Feb 2023, 16:00" in invoice_html(Invoice.objects.get(pk=invoice.pk))


def test_subscription_page_shows_local_periods_and_the_negotiated_price(admin_client):
    sub = _la_subscription([{"price": "Calls", "unit_amount": "0.008"}])
    html = admin_client.get(f"/admin/customers/subscription/{sub.pk}/change/").content.decode()
    # [2023-02-08 00:00 UTC, 2023-03-01 08:00 UTC) in Los Angeles: Feb 7 16:00 -> Mar 1 00:00.
    assert "7 Feb 2023, 16:00 → 1 Mar 2023, 00:00 (America/Los_Angeles)" in html
    assert "Calls: override: unit_amount 0.008 (plan: 0.01)" in html


def test_customer_360_names_the_zone_and_the_negotiated_price(admin_client):
    sub = _la_subscription([{"price": "Calls", "unit_amount": "0.008"}])
    html = admin_client.get(f"/admin/customers/customer/{sub.customer_id}/change/").content.decode()
    assert "Periods in the customer's timezone, America/Los_Angeles." in html
    assert "Calls: override: unit_amount 0.008 (plan: 0.01)" in html
    assert "7 Feb 2023 – 1 Mar 2023" in html


def test_a_dropped_override_is_a_warning_on_the_subscription_page(admin_client):
    sub = _la_subscription([{"price": "Calls", "unit_amount": "0.008"}])
    v2 = PlanVersionFactory(plan=sub.plan, published=True, number=2, effective_from=utc(2023, 2, 20))
    PriceFactory(plan_version=v2, name="Subscription", amount=Decimal("60.00"))
    sub.plan_version = v2  # as the boundary would set it for the next period
    sub.save(update_fields=["plan_version"])
    html = admin_client.get(f"/admin/customers/subscription/{sub.pk}/change/").content.decode()
    assert "Dropped: this version has no price named &#x27;Calls&#x27;; the override is not billed." in html


def test_the_customer_form_offers_zones_and_refuses_an_unknown_one(admin_client):
    customer = CustomerFactory(external_id="zone-form")
    page = admin_client.get(f"/admin/customers/customer/{customer.pk}/change/").content.decode()
    assert '<option value="America/Los_Angeles">' in page
    data = {
        "name": customer.name,
        "email": "",
        "currency": customer.currency,
        "net_payment_terms": 0,
        "invoice_grace_days": 0,
        "timezone": "Mars/Olympus",
        "subscriptions-TOTAL_FORMS": 0,
        "subscriptions-INITIAL_FORMS": 0,
    }
    refused = admin_client.post(f"/admin/customers/customer/{customer.pk}/change/", data)
    assert refused.status_code == 200 and "Mars/Olympus is not one of the available choices" in refused.content.decode()
    data["timezone"] = "Asia/Kolkata"
    saved = admin_client.post(f"/admin/customers/customer/{customer.pk}/change/", data)
    assert saved.status_code == 302
    customer.refresh_from_db()
    assert customer.timezone == "Asia/Kolkata"


def test_the_invoice_list_shows_the_period_in_the_customer_zone(admin_client):
    _la_subscription()
    html = admin_client.get("/admin/invoicing/invoice/").content.decode()
    # [2023-02-08 00:00 UTC, 2023-03-01 08:00 UTC) is local Feb 7 to Feb 28 (the end is local midnight Mar 1).
    assert "Feb 7–28 2023 (America/Los_Angeles)" in html


def test_a_monthly_entitlement_window_starts_at_local_midnight():
    from customers.entitlements import usage_default_window

    customer = CustomerFactory(external_id="no-sub", timezone=LA)
    # 2023-03-01 03:00 UTC is still Feb 28 in Los Angeles: its month runs Feb 1 08:00 UTC -> Mar 1 08:00 UTC.
    assert usage_default_window(customer=customer, now=utc(2023, 3, 1, 3)) == (utc(2023, 2, 1, 8), utc(2023, 3, 1, 8))


def test_finance_sets_a_negotiated_price_in_the_admin_from_the_next_period(admin_client):
    sub = _la_subscription()
    page = admin_client.get(f"/admin/customers/subscription/{sub.pk}/change/").content.decode()
    url = f"/admin/customers/subscription/{sub.pk}/prices/"
    assert url in page
    calls = sub.plan_version.prices.get(name="Calls")
    fee = sub.plan_version.prices.get(name="Subscription")
    form = admin_client.get(url).content.decode()
    assert "The plan&#x27;s value: 0.01." in form and "The plan&#x27;s value: 50." in form
    refused = admin_client.post(url, {f"price_{calls.pk}__unit_amount": "-1"})
    assert refused.status_code == 200 and "errors" in refused.content.decode()
    sub.refresh_from_db()
    assert sub.pending_price_overrides is None
    saved = admin_client.post(url, {f"price_{calls.pk}__unit_amount": "0.008", f"price_{fee.pk}__amount": ""})
    assert saved.status_code == 302
    sub.refresh_from_db()
    assert sub.price_overrides == [] and sub.pending_price_overrides == [{"price": "Calls", "unit_amount": "0.008"}]
    page = admin_client.get(f"/admin/customers/subscription/{sub.pk}/change/").content.decode()
    assert "From the next period: Calls: override: unit_amount 0.008 (plan: 0.01)" in page
