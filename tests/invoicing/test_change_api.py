"""POST /subscriptions/{id}/change and /cancel_scheduled_change, trial fields (API.md "Subscription changes")."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from customers.models import Subscription
from invoicing.models import CreditNote, Invoice
from tests.factories.catalog import PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory

from .helpers import start

pytestmark = pytest.mark.django_db


def fee_plan(key: str, amount: str, interval: str = "month", currency: str = "USD"):
    version = PlanVersionFactory(
        published=True, number=1, plan__key=key, plan__interval=interval, plan__currency=currency
    )
    PriceFactory(plan_version=version, name=f"{key} fee", amount=Decimal(amount))
    return version


@pytest.fixture
def on_basic():
    """A monthly 30.00 anniversary subscription that started 10 days ago (its first period is current)."""
    fee_plan("basic", "30.00")
    fee_plan("pro", "90.00")
    fee_plan("mini", "5.00")
    now = timezone.now()
    basic = fee_plan("basic-2", "30.00").plan
    return start(CustomerFactory(external_id="acme"), basic, now - timedelta(days=10), billing="anniversary", now=now)


def test_change_now_preview_saves_nothing_then_the_change(api, on_basic):
    url = f"/api/v1/subscriptions/{on_basic.pk}/change"
    before = (Invoice.objects.count(), CreditNote.objects.count(), Subscription.objects.count())
    preview = api.post(url, {"plan": "pro", "preview": True})
    assert preview.status_code == 200, preview.content
    body = preview.json()
    assert (Invoice.objects.count(), CreditNote.objects.count(), Subscription.objects.count()) == before
    assert body["invoice"]["status"] == "preview" and body["invoice"]["id"] is None
    assert body["credit_note"]["id"] is None
    assert body["previous"]["status"] == "ended" and body["subscription"]["plan"] == "pro"

    real = api.post(url, {"plan": "pro"})
    assert real.status_code == 200, real.content
    done = real.json()
    # The same code computed both: the same amounts.
    assert done["invoice"]["total"] == body["invoice"]["total"]
    assert done["credit_note"]["amount"] == body["credit_note"]["amount"]
    assert done["invoice"]["status"] in ("finalized", "paid") and done["credit_note"]["id"]
    assert done["subscription"]["previous_subscription"] == str(on_basic.pk)
    assert done["previous"]["next_subscription"] == done["subscription"]["id"]
    assert done["subscription"]["scheduled_change"] is None
    again = api.get(f"/api/v1/subscriptions/{on_basic.pk}").json()
    assert again["status"] == "ended" and again["next_subscription"] == done["subscription"]["id"]
    # An ended subscription cannot change: 409.
    assert api.post(url, {"plan": "pro"}).status_code == 409


def test_downgrade_is_scheduled_and_can_be_canceled(api, on_basic):
    url = f"/api/v1/subscriptions/{on_basic.pk}/change"
    response = api.post(url, {"plan": "mini"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["previous"] is None and body["invoice"] is None and body["credit_note"] is None
    scheduled = body["subscription"]["scheduled_change"]
    assert scheduled["plan"] == "mini"
    assert scheduled["at"] == body["subscription"]["current_period_end"]
    cancel = f"/api/v1/subscriptions/{on_basic.pk}/cancel_scheduled_change"
    response = api.post(cancel)
    assert response.status_code == 200 and response.json()["scheduled_change"] is None
    assert api.post(cancel).status_code == 409


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"plan": "nope"}, "plan"),
        ({"plan": "basic-2"}, "plan"),  # the same plan
        ({"plan": "euro"}, "plan"),  # another currency
        ({"plan": "drafty"}, "plan"),  # no published version
        ({"plan": "pro", "at": "later"}, "at"),
        ({"plan": "pro", "effective_at": "2000-01-01T00:00:00Z"}, "effective_at"),  # before the period
        ({"plan": "pro", "effective_at": "2099-01-01T00:00:00Z"}, "effective_at"),  # in the future
        ({"plan": "pro", "pinned_version": 7}, "pinned_version"),
        ({"plan": "pro", "preview": "maybe"}, "preview"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, on_basic, payload, field):
    fee_plan("euro", "10.00", currency="EUR")
    PlanVersionFactory(plan__key="drafty")
    response = api.post(f"/api/v1/subscriptions/{on_basic.pk}/change", payload)
    assert response.status_code == 400, response.content
    assert field in response.content.decode()
    assert Subscription.objects.get(pk=on_basic.pk).status == "active"


def test_trial_days_on_the_version_and_the_subscription(api):
    response = api.post("/api/v1/plans", {"key": "trialed", "name": "Trialed", "currency": "USD", "interval": "month"})
    assert response.status_code == 201, response.content
    response = api.post(
        "/api/v1/plans/trialed/versions",
        {"prices": [{"name": "Fee", "model": "flat_fee", "amount": "20"}], "publish": True, "trial_days": 14},
    )
    assert response.status_code == 201, response.content
    assert response.json()["trial_days"] == 14
    CustomerFactory(external_id="newbie")
    response = api.post("/api/v1/subscriptions", {"customer": "newbie", "plan": "trialed"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["in_trial"] is True and body["trial_end"] is not None
    assert body["previous_subscription"] is None and body["next_subscription"] is None
    # No fee invoice during the trial.
    assert Invoice.objects.filter(subscription_id=body["id"]).count() == 0
    response = api.post("/api/v1/subscriptions", {"customer": "newbie", "plan": "trialed", "trial_days": 0})
    assert response.json()["trial_end"] is None and response.json()["in_trial"] is False
    assert (
        api.post("/api/v1/subscriptions", {"customer": "newbie", "plan": "trialed", "trial_days": -1}).status_code
        == 400
    )
    bad = api.post("/api/v1/plans/trialed/versions", {"trial_days": 400})
    assert bad.status_code == 400 and "trial_days" in bad.content.decode()
