"""Admin smoke tests: changelists, the customer page with its subscriptions, the periods table, add and cancel."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from customers.models import Customer, Subscription
from tests.factories.catalog import PlanFactory, PlanVersionFactory
from tests.factories.customers import CustomerFactory, TaxRateFactory, subscribe

pytestmark = pytest.mark.django_db


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def subscription(db):
    customer = CustomerFactory(external_id="acme", name="Acme Corp", email="ap@acme.test")
    return subscribe(customer=customer, start_at=utc(2026, 1, 15))


def test_changelists_render_and_search(admin_client, subscription):
    TaxRateFactory()
    for name in ("customer", "subscription", "taxrate"):
        assert admin_client.get(reverse(f"admin:customers_{name}_changelist")).status_code == 200
    found = admin_client.get(reverse("admin:customers_customer_changelist"), {"q": "ap@acme"})
    assert b"Acme Corp" in found.content
    filtered = admin_client.get(reverse("admin:customers_customer_changelist"), {"currency__exact": "EUR"})
    assert b"Acme Corp" not in filtered.content
    subs = admin_client.get(reverse("admin:customers_subscription_changelist"), {"q": "acme"})
    assert b"2026-01-15 00:00 \xe2\x86\x92 2026-02-01 00:00" in subs.content


def test_customer_page_shows_subscriptions_inline_with_links(admin_client, subscription):
    page = admin_client.get(reverse("admin:customers_customer_change", args=[subscription.customer.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert reverse("admin:customers_subscription_change", args=[subscription.pk]) in html
    assert "v1" in html and "2026-01-15 00:00 → 2026-02-01 00:00" in html


def test_customer_form_refuses_an_unconfigured_currency(admin_client):
    response = admin_client.post(
        reverse("admin:customers_customer_add"),
        {
            "external_id": "kw",
            "name": "Kuwait Co",
            "currency": "KWD",
            "net_payment_terms": 0,
            "invoice_grace_days": 0,
            "subscriptions-TOTAL_FORMS": 0,
            "subscriptions-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 200
    assert not Customer.objects.filter(external_id="kw").exists()


def test_subscription_page_shows_its_periods_table(admin_client, subscription):
    from django.db import transaction

    from customers.services import subscription_row_advance

    with transaction.atomic():
        subscription_row_advance(subscription=subscription, now=utc(2026, 2, 1))
    page = admin_client.get(reverse("admin:customers_subscription_change", args=[subscription.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="subscription-periods"' in html
    # [Jan 15, Feb 1) is 17 days and past; [Feb 1, Mar 1) is 28 days and current
    assert "<td>2026-01-15 00:00</td><td>2026-02-01 00:00</td><td>17</td><td>v1</td><td>past</td>" in html
    assert "<td>2026-02-01 00:00</td><td>2026-03-01 00:00</td><td>28</td><td>v1</td><td>current</td>" in html


def test_cancel_action_asks_for_confirmation_then_cancels_and_logs(admin_client, subscription):
    url = reverse("admin:customers_subscription_changelist")
    confirm = admin_client.post(url, {"action": "cancel_subscriptions", "_selected_action": [subscription.pk]})
    assert confirm.status_code == 200
    assert b"You are about to cancel 1 subscription" in confirm.content
    subscription.refresh_from_db()
    assert not subscription.cancel_at_period_end  # nothing happens before confirming
    done = admin_client.post(
        url,
        {
            "action": "cancel_subscriptions",
            "_selected_action": [subscription.pk],
            "confirm": "yes",
            "at": "period_end",
        },
        follow=True,
    )
    assert b"Canceled 1 subscription(s) at the end of their current period." in done.content
    subscription.refresh_from_db()
    assert (subscription.status, subscription.cancel_at_period_end) == ("active", True)
    assert LogEntry.objects.filter(object_id=str(subscription.pk), change_message="Canceled at period end").exists()
    # from the subscription's own page: cancel now
    page_url = reverse("admin:customers_subscription_cancel", args=[subscription.pk])
    assert admin_client.get(page_url).status_code == 200
    admin_client.post(page_url, {"confirm": "yes", "at": "now"})
    subscription.refresh_from_db()
    assert subscription.status == "ended"
    # an ended one is reported, not a crash
    again = admin_client.post(page_url, {"confirm": "yes", "at": "now"}, follow=True)
    assert b"Not canceled: #" in again.content


def test_add_subscription_goes_through_the_rules(admin_client):
    plan = PlanFactory(key="pro", currency="USD")
    PlanVersionFactory(plan=plan, number=1, published=True)
    usd = CustomerFactory(currency="USD")
    eur = CustomerFactory(currency="EUR")
    url = reverse("admin:customers_subscription_add")
    assert admin_client.get(url).status_code == 200
    refused = admin_client.post(
        url, {"customer": eur.pk, "plan": plan.pk, "billing": "calendar", "start_at": "2026-01-15 00:00"}
    )
    assert refused.status_code == 200 and b"the customer pays in EUR" in refused.content
    assert not Subscription.objects.exists()
    created = admin_client.post(
        url, {"customer": usd.pk, "plan": plan.pk, "billing": "calendar", "start_at": "2026-01-15 00:00"}
    )
    assert created.status_code == 302
    subscription = Subscription.objects.get()
    assert (subscription.customer, subscription.start_at) == (usd, utc(2026, 1, 15))


def test_a_tax_rate_in_use_is_never_deleted(admin_client):
    """Regression: deleting a tax rate silently removed it from every customer's next invoices."""
    from django.db import transaction

    from core.errors import Conflict
    from customers.models import TaxRate
    from customers.services import tax_rate_delete
    from tests.factories.customers import TaxRateFactory

    vat = TaxRateFactory(code="vat-20")
    unused = TaxRateFactory(code="gst-5", name="GST", percentage="5")
    acme = CustomerFactory(external_id="acme", name="Acme")
    acme.tax_rates.add(vat)

    page = admin_client.get(f"/admin/customers/taxrate/{vat.pk}/delete/")
    assert page.status_code == 200 and "Customer Acme (acme) uses tax rate vat-20" in page.content.decode()
    admin_client.post(f"/admin/customers/taxrate/{vat.pk}/delete/", {"post": "yes"})
    admin_client.post(
        "/admin/customers/taxrate/",
        {"action": "delete_selected", "_selected_action": [vat.pk, unused.pk], "post": "yes"},
    )
    assert TaxRate.objects.filter(pk=vat.pk).exists() and list(acme.tax_rates.all()) == [vat]
    assert TaxRate.objects.filter(pk=unused.pk).exists()  # refused as a whole: one of the two is in use
    with pytest.raises(Conflict) as refused, transaction.atomic():
        tax_rate_delete(rate=vat)
    assert refused.value.field == "tax_rates" and "acme" in refused.value.message

    # once no customer uses it, it may go
    admin_client.post(f"/admin/customers/taxrate/{unused.pk}/delete/", {"post": "yes"})
    assert not TaxRate.objects.filter(pk=unused.pk).exists()
    acme.tax_rates.clear()
    admin_client.post(f"/admin/customers/taxrate/{vat.pk}/delete/", {"post": "yes"})
    assert not TaxRate.objects.exists()


def test_customer_list_counts_active_subscriptions_without_a_join(admin_client, subscription):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    subscribe(customer=subscription.customer, start_at=utc(2026, 2, 1))
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(reverse("admin:customers_customer_changelist"), {"q": "acme", "o": "6"})
    assert response.status_code == 200
    assert [c._active for c in response.context["cl"].result_list] == [2]
    assert not [q["sql"] for q in ctx.captured_queries if 'JOIN "customers_subscription"' in q["sql"]]


def test_customer_form_bounds_terms_and_grace_to_a_year(admin_client):
    url = reverse("admin:customers_customer_add")
    base = {
        "external_id": "slow",
        "name": "Slow Co",
        "currency": "USD",
        "subscriptions-TOTAL_FORMS": 0,
        "subscriptions-INITIAL_FORMS": 0,
    }
    refused = admin_client.post(url, {**base, "net_payment_terms": 999999999, "invoice_grace_days": 366})
    assert refused.status_code == 200
    errors = refused.context["adminform"].form.errors
    assert set(errors) == {"net_payment_terms", "invoice_grace_days"}
    assert not Customer.objects.filter(external_id="slow").exists()
    created = admin_client.post(url, {**base, "net_payment_terms": 365, "invoice_grace_days": 0})
    assert created.status_code == 302
    assert Customer.objects.get(external_id="slow").net_payment_terms == 365


@pytest.mark.parametrize(
    ("start_at", "message"),
    [
        ("9999-12-31 00:00", b"Must be between 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z."),
        ("1999-12-31 23:59", b"Must be between 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z."),
        # v1 takes effect on 2025-01-01: an unpinned start before it is refused on the start field.
        ("2024-06-01 00:00", b"first published version takes effect at 2025-01-01T00:00:00Z"),
    ],
)
def test_add_subscription_refuses_a_start_out_of_range_on_its_field(admin_client, start_at, message):
    plan = PlanFactory(key="pro", currency="USD")
    PlanVersionFactory(plan=plan, number=1, published=True, effective_from=utc(2025, 1, 1))
    customer = CustomerFactory(currency="USD")
    response = admin_client.post(
        reverse("admin:customers_subscription_add"),
        {
            "customer": customer.pk,
            "plan": plan.pk,
            "billing": "calendar",
            "start_at": start_at,
        },
    )
    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["start_at"]
    assert message in response.content
    assert not Subscription.objects.exists()


def test_add_subscription_in_the_past_bills_its_first_period_and_says_runs_bill_the_rest(admin_client):
    from invoicing.models import Invoice

    plan = PlanFactory(key="pro", currency="USD")
    PlanVersionFactory(plan=plan, number=1, published=True)
    customer = CustomerFactory(currency="USD")
    response = admin_client.post(
        reverse("admin:customers_subscription_add"),
        {
            "customer": customer.pk,
            "plan": plan.pk,
            "billing": "calendar",
            "start_at": "2024-01-01 00:00",
        },
        follow=True,
    )
    assert b"The periods after it are billed by the next billing run." in response.content
    subscription = Subscription.objects.get()
    # Only January 2024 is started (and invoiced) here, however long ago it was.
    assert (subscription.current_period_start, subscription.current_period_end) == (utc(2024, 1, 1), utc(2024, 2, 1))
    assert Invoice.objects.filter(subscription=subscription).count() == 1


def _customer_form(customer=None, **changes) -> dict:
    data = {
        "name": "Acme Corp",
        "email": "ap@acme.test",
        "currency": "USD",
        "net_payment_terms": "0",
        "invoice_grace_days": "0",
        "subscriptions-TOTAL_FORMS": "0",
        "subscriptions-INITIAL_FORMS": "0",
    }
    if customer is None:
        data["external_id"] = "acme-2"
    data.update(changes)
    return data


def test_customer_admin_saves_through_the_service_with_the_apis_rules(admin_client, subscription):
    """The customer form is checked by customers.services.customer_check and saved by customer_create/update."""
    vat = TaxRateFactory(code="vat-20")
    created = admin_client.post(reverse("admin:customers_customer_add"), _customer_form(tax_rates=[str(vat.pk)]))
    assert created.status_code == 302
    customer = Customer.objects.get(external_id="acme-2")
    assert [r.code for r in customer.tax_rates.all()] == ["vat-20"]
    assert LogEntry.objects.filter(object_id=str(customer.pk), action_flag=1).exists()
    # the API's 409 rule shows next to the currency field: the customer has an active subscription
    busy = subscription.customer
    url = reverse("admin:customers_customer_change", args=[busy.pk])
    refused = admin_client.post(url, _customer_form(busy, currency="EUR"))
    assert refused.status_code == 200
    assert refused.context["adminform"].form.errors["currency"] == [
        "The currency cannot change while the customer has active subscriptions."
    ]
    assert admin_client.post(url, _customer_form(busy, name="Acme Inc", net_payment_terms="30")).status_code == 302
    busy.refresh_from_db()
    assert (busy.name, busy.net_payment_terms, busy.currency) == ("Acme Inc", 30, "USD")
