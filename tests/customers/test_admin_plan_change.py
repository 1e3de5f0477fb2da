"""The admin's "Change plan..." flow: form, preview (nothing saved), confirmation; scheduled changes shown and
cancelable on the subscription and the customer 360 page; the chain shown on both subscriptions."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from customers.models import Subscription
from invoicing.models import CreditNote, Invoice
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.invoicing.helpers import start

pytestmark = pytest.mark.django_db


def _plan(key: str, name: str, amount: str):
    version = PlanVersionFactory(published=True, number=1, plan__key=key, plan__name=name)
    PriceFactory(plan_version=version, name=f"{name} fee", amount=Decimal(amount))
    return version.plan


@pytest.fixture
def plans():
    return {
        "basic": _plan("basic", "Basic", "30.00"),
        "pro": _plan("pro", "Pro", "90.00"),
        "mini": _plan("mini", "Mini", "5.00"),
    }


@pytest.fixture
def subscription(plans):
    now = timezone.now()
    return start(CustomerFactory(name="Acme"), plans["basic"], now - timedelta(days=10), billing="anniversary", now=now)


def _counts():
    return Invoice.objects.count(), CreditNote.objects.count(), Subscription.objects.count()


def test_change_plan_preview_then_confirm(admin_client, subscription, plans):
    url = reverse("admin:customers_subscription_change_plan", args=[subscription.pk])
    page = admin_client.get(reverse("admin:customers_subscription_change", args=[subscription.pk]))
    assert url in page.content.decode()  # the "Change plan..." button
    assert admin_client.get(url).status_code == 200
    before = _counts()
    preview = admin_client.post(url, {"plan": plans["pro"].pk, "at": "auto", "step": "preview"})
    assert preview.status_code == 200
    html = preview.content.decode()
    assert _counts() == before  # the preview saved nothing
    for text in (
        "Now: Basic",
        "New: Pro",
        "An upgrade",
        "Change invoice",
        "Credit note for the unused part",
        "Plan credits",
    ):
        assert text in html, text
    # Basic 30.00 x 12 = 360.00 a year against Pro 90.00 x 12 = 1,080.00.
    assert "$360.00" in html and "$1,080.00" in html
    confirm = admin_client.post(
        url,
        {
            "plan": plans["pro"].pk,
            "at": "auto",
            "effective_at": preview.context["form"]["effective_at"].value(),
            "confirm": "yes",
        },
    )
    assert confirm.status_code == 302
    subscription.refresh_from_db()
    new = subscription.next_subscription_or_none
    assert subscription.status == Subscription.Status.ENDED and new.plan == plans["pro"]
    assert confirm.url == reverse("admin:customers_subscription_change", args=[new.pk])
    assert LogEntry.objects.filter(object_id=str(subscription.pk), change_message__startswith="Changed to Pro").exists()
    # Both pages show the chain.
    new_page = admin_client.get(confirm.url).content.decode()
    old_url = reverse("admin:customers_subscription_change", args=[subscription.pk])
    assert f'Replaced <a href="{old_url}">#{subscription.pk}' in new_page
    old_page = admin_client.get(reverse("admin:customers_subscription_change", args=[subscription.pk])).content.decode()
    assert "Replaced by <a" in old_page


def test_scheduled_change_is_shown_and_can_be_canceled(admin_client, subscription, plans):
    url = reverse("admin:customers_subscription_change_plan", args=[subscription.pk])
    preview = admin_client.post(url, {"plan": plans["mini"].pk, "at": "auto", "step": "preview"})
    assert "A downgrade" in preview.content.decode() and "at the end of the current period" in preview.content.decode()
    admin_client.post(url, {"plan": plans["mini"].pk, "at": "auto", "confirm": "yes"})
    subscription.refresh_from_db()
    assert subscription.scheduled_plan == plans["mini"]
    cancel_url = reverse("admin:customers_subscription_cancel_scheduled_change", args=[subscription.pk])
    page = admin_client.get(reverse("admin:customers_subscription_change", args=[subscription.pk])).content.decode()
    assert "Changes to <strong>Mini</strong>" in page and cancel_url in page
    c360 = admin_client.get(
        reverse("admin:customers_customer_change", args=[subscription.customer_id])
    ).content.decode()
    assert "changes to Mini" in c360 and cancel_url in c360
    assert "Yes, cancel the scheduled change" in admin_client.get(cancel_url).content.decode()
    assert admin_client.post(cancel_url, {"confirm": "yes"}).status_code == 302
    subscription.refresh_from_db()
    assert subscription.scheduled_plan is None


def test_bad_choice_shows_the_error_on_the_form(admin_client, subscription, plans):
    url = reverse("admin:customers_subscription_change_plan", args=[subscription.pk])
    response = admin_client.post(
        url, {"plan": plans["pro"].pk, "at": "now", "effective_at": "2001-01-01 00:00", "step": "preview"}
    )
    assert response.status_code == 200
    assert "inside the current period" in response.content.decode()
    c360 = admin_client.get(
        reverse("admin:customers_customer_change", args=[subscription.customer_id])
    ).content.decode()
    assert url in c360  # "Change plan..." from the 360 page


def test_trial_days_are_set_on_a_version_and_overridden_on_a_subscription_in_the_admin(admin_client, plans):
    from catalog.models import PlanVersion

    formsets = {
        f"{kind}-{name}": value
        for kind in ("prices", "entitlements", "credit_grants")
        for name, value in (
            ("TOTAL_FORMS", "0"),
            ("INITIAL_FORMS", "0"),
            ("MIN_NUM_FORMS", "0"),
            ("MAX_NUM_FORMS", "1000"),
        )
    }
    response = admin_client.post(
        reverse("admin:catalog_planversion_add"),
        {
            "plan": str(plans["pro"].pk),
            "effective_from_0": "2026-02-01",
            "effective_from_1": "00:00:00",
            "trial_days": "14",
            "notes": "",
            **formsets,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert PlanVersion.objects.get(plan=plans["pro"], number=2).trial_days == 14
    customer = CustomerFactory(external_id="trial-admin")
    response = admin_client.post(
        reverse("admin:customers_subscription_add"),
        {"customer": customer.pk, "plan": plans["basic"].pk, "start_at": "", "billing": "calendar", "trial_days": "7"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    subscription = Subscription.objects.get(customer=customer)
    # 7 days after its start, same time of day; no start invoice during the trial.
    assert subscription.trial_end == subscription.start_at + timedelta(days=7)
    assert not Invoice.objects.filter(subscription=subscription).exists()
    page = admin_client.get(reverse("admin:customers_subscription_change", args=[subscription.pk])).content.decode()
    assert "(in trial): no fixed fees before it" in page
