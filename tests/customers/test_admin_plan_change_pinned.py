"""The admin's "Change plan..." form offers the API's ``pinned_version``: optional, a published version of the new
plan; another plan's version or a draft is refused on the form with a clear message, and nothing is saved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from backoffice.plan_change import format_instant_input
from customers.models import Subscription
from invoicing.models import CreditNote, Invoice
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.invoicing.helpers import start

pytestmark = pytest.mark.django_db


def _version(plan, number: int, amount: str, *, published=True, effective_from=datetime(2020, 1, 1, tzinfo=UTC)):
    version = PlanVersionFactory(plan=plan, number=number, published=published, effective_from=effective_from)
    PriceFactory(plan_version=version, name=f"{plan.name} fee", amount=Decimal(amount))
    return version


@pytest.fixture
def catalog():
    basic = PlanVersionFactory(published=True, number=1, plan__key="basic", plan__name="Basic")
    PriceFactory(plan_version=basic, name="Basic fee", amount=Decimal("30.00"))
    pro_v1 = PlanVersionFactory(published=True, number=1, plan__key="pro", plan__name="Pro")
    PriceFactory(plan_version=pro_v1, name="Pro fee", amount=Decimal("90.00"))
    pro = pro_v1.plan
    return {
        "basic": basic.plan,
        "pro": pro,
        "pro_v1": pro_v1,
        # v2 (120.00) is the version in effect now; v3 is a draft.
        "pro_v2": _version(pro, 2, "120.00", effective_from=datetime(2021, 1, 1, tzinfo=UTC)),
        "pro_v3": _version(pro, 3, "150.00", published=False),
        "mini_v7": _version(
            PlanVersionFactory(number=1, published=True, plan__key="mini", plan__name="Mini").plan, 7, "5.00"
        ),
    }


@pytest.fixture
def subscription(catalog):
    now = timezone.now()
    # Whole seconds: the period's start goes through the form's date-time field unchanged.
    return start(
        CustomerFactory(name="Acme"),
        catalog["basic"],
        (now - timedelta(days=10)).replace(microsecond=0),
        billing="anniversary",
        now=now,
    )


def _counts():
    return Invoice.objects.count(), CreditNote.objects.count(), Subscription.objects.count()


def test_the_form_offers_published_versions_and_pins_the_chosen_one(admin_client, subscription, catalog):
    url = reverse("admin:customers_subscription_change_plan", args=[subscription.pk])
    form = admin_client.get(url).content.decode()
    assert "Version of the new plan" in form and "The version in effect (default)" in form
    assert "Pro: version 1 (from" in form and "Pro: version 2 (from" in form
    assert "Pro: version 3" not in form  # a draft is not offered
    assert "Basic: version" not in form  # nor the current plan's versions
    at = format_instant_input(subscription.current_period_start)
    body = {"plan": catalog["pro"].pk, "at": "now", "effective_at": at, "pinned_version": catalog["pro_v1"].pk}
    before = _counts()
    preview = admin_client.post(url, body | {"step": "preview"})
    assert preview.status_code == 200
    html = preview.content.decode()
    assert _counts() == before  # the preview saved nothing
    # Changed at the period's start, the new plan bills its whole period with the pinned v1: 90.00, not v2's
    # 120.00; the whole in-advance 30.00 of Basic is credited back.
    assert "New: Pro" in html and "Version 1, monthly" in html
    assert "$90.00" in html and "$120.00" not in html
    assert preview.context["form"]["pinned_version"].value() == catalog["pro_v1"].pk  # carried to the confirmation
    confirm = admin_client.post(url, body | {"confirm": "yes"})
    assert confirm.status_code == 302
    subscription.refresh_from_db()
    new = subscription.next_subscription_or_none
    assert new.plan == catalog["pro"] and new.pinned_version == catalog["pro_v1"]
    assert new.plan_version == catalog["pro_v1"]
    change = Invoice.objects.get(subscription=new)
    assert change.subtotal == Decimal("90.00")
    assert CreditNote.objects.get().amount == Decimal("30.00")


def test_without_a_pinned_version_the_version_in_effect_bills(admin_client, subscription, catalog):
    url = reverse("admin:customers_subscription_change_plan", args=[subscription.pk])
    at = format_instant_input(subscription.current_period_start)
    response = admin_client.post(
        url, {"plan": catalog["pro"].pk, "at": "now", "effective_at": at, "pinned_version": "", "confirm": "yes"}
    )
    assert response.status_code == 302
    subscription.refresh_from_db()
    new = subscription.next_subscription_or_none
    # v2 is in effect: its whole period, 120.00.
    assert new.pinned_version is None and new.plan_version == catalog["pro_v2"]
    assert Invoice.objects.get(subscription=new).subtotal == Decimal("120.00")


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (
            "mini_v7",
            "Version 7 is a version of Mini, not of the new plan Pro: choose a version of Pro, or leave it empty.",
        ),
        ("pro_v3", "Choose a published version of the new plan from the list, or leave it empty."),
    ],
)
def test_another_plans_version_or_a_draft_is_refused_on_the_form(admin_client, subscription, catalog, version, message):
    url = reverse("admin:customers_subscription_change_plan", args=[subscription.pk])
    before = _counts()
    for step in ({"step": "preview"}, {"confirm": "yes"}):
        response = admin_client.post(
            url, {"plan": catalog["pro"].pk, "at": "now", "pinned_version": catalog[version].pk} | step
        )
        assert response.status_code == 200
        assert response.context["form"].errors["pinned_version"] == [message]
        assert message in response.content.decode().replace("&#x27;", "'")
    assert _counts() == before
    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.ACTIVE
