"""API.md: POST /subscriptions, GET /subscriptions/{id}, GET /subscriptions?customer=,
POST /subscriptions/{id}/cancel."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from customers.api import views
from customers.models import Subscription
from tests.factories.catalog import PlanFactory, PlanVersionFactory
from tests.factories.customers import CustomerFactory, subscribe

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock(monkeypatch):
    """The views' clock, set to 2026-01-20 12:00 UTC (services take ``now``; views read it here)."""
    monkeypatch.setattr(views, "request_now", lambda: NOW)
    return NOW


@pytest.fixture
def plan(db):
    plan = PlanFactory(key="pro", currency="USD")
    PlanVersionFactory(plan=plan, number=1, published=True, effective_from=datetime(2025, 1, 1, tzinfo=UTC))
    return plan


@pytest.fixture
def customer(db):
    return CustomerFactory(external_id="acme", currency="USD")


def test_calendar_start_jan_15_has_a_partial_first_period_to_feb_1(api, clock, plan, customer):
    response = api.post(
        "/api/v1/subscriptions",
        {
            "customer": "acme",
            "plan": "pro",
            "start_at": "2026-01-15T00:00:00Z",
            "billing": "calendar",
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    subscription = Subscription.objects.get()
    assert body == {
        "id": str(subscription.pk),
        "customer": "acme",
        "plan": "pro",
        "plan_version": 1,
        "pinned_version": None,
        "status": "active",
        "cancel_at_period_end": False,
        "billing": "calendar",
        "start_at": "2026-01-15T00:00:00Z",
        "canceled_at": None,
        "ended_at": None,
        # calendar periods align to the 1st: the first runs [Jan 15, Feb 1), 17 of January's 31 days
        "current_period_start": "2026-01-15T00:00:00Z",
        "current_period_end": "2026-02-01T00:00:00Z",
        "price_overrides": [],
        "pending_price_overrides": None,
        # No trial, no plan change (API.md "Subscription changes and trials").
        "trial_end": None,
        "in_trial": False,
        "previous_subscription": None,
        "next_subscription": None,
        "scheduled_change": None,
    }
    assert api.get(f"/api/v1/subscriptions/{subscription.pk}").json() == body


def test_anniversary_start_jan_31_10am_runs_to_feb_28_10am(api, plan, customer, monkeypatch):
    monkeypatch.setattr(views, "request_now", lambda: datetime(2026, 2, 3, tzinfo=UTC))
    response = api.post(
        "/api/v1/subscriptions",
        {
            "customer": "acme",
            "plan": "pro",
            "start_at": "2026-01-31T10:00:00Z",
            "billing": "anniversary",
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    # Jan 31 + 1 month clamps to Feb 28 (2026 is not a leap year); the time of day is kept
    assert (body["current_period_start"], body["current_period_end"]) == (
        "2026-01-31T10:00:00Z",
        "2026-02-28T10:00:00Z",
    )


def test_defaults_start_now_calendar_unpinned(api, clock, plan, customer):
    body = api.post("/api/v1/subscriptions", {"customer": "acme", "plan": "pro"}).json()
    assert body["start_at"] == "2026-01-20T12:00:00Z"
    assert body["billing"] == "calendar"
    assert body["pinned_version"] is None
    assert (body["current_period_start"], body["current_period_end"]) == (
        "2026-01-20T12:00:00Z",
        "2026-02-01T00:00:00Z",
    )


def test_pinned_version_is_a_version_number_of_the_plan(api, clock, plan, customer):
    PlanVersionFactory(plan=plan, number=2, published=True, effective_from=datetime(2026, 1, 1, tzinfo=UTC))
    body = api.post("/api/v1/subscriptions", {"customer": "acme", "plan": "pro", "pinned_version": 1}).json()
    assert (body["plan_version"], body["pinned_version"]) == (1, 1)
    unpinned = api.post("/api/v1/subscriptions", {"customer": "acme", "plan": "pro"}).json()
    assert (unpinned["plan_version"], unpinned["pinned_version"]) == (2, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plan": "pro"}, "customer"),
        ({"customer": "ghost", "plan": "pro"}, "customer"),
        ({"customer": "acme"}, "plan"),
        ({"customer": "acme", "plan": "ghost"}, "plan"),
        ({"customer": "acme", "plan": "pro", "start_at": "the fifteenth"}, "start_at"),
        ({"customer": "acme", "plan": "pro", "start_at": "2026-13-45T00:00:00Z"}, "start_at"),
        ({"customer": "acme", "plan": "pro", "billing": "weekly"}, "billing"),
        ({"customer": "acme", "plan": "pro", "pinned_version": 7}, "pinned_version"),
        ({"customer": "acme", "plan": "pro", "pinned_version": "one"}, "pinned_version"),
        ({"customer": "acme", "plan": "draft-only"}, "plan"),  # no published version
        # Before v1 took effect (2025-01-01): the start is what is wrong, not the plan.
        ({"customer": "acme", "plan": "pro", "start_at": "2024-06-01T00:00:00Z"}, "start_at"),
        # Outside 2000-01-01..2100-01-01 (core.instants): 9999-12-31 used to overflow into a 500.
        ({"customer": "acme", "plan": "pro", "start_at": "9999-12-31T00:00:00Z"}, "start_at"),
        ({"customer": "acme", "plan": "pro", "start_at": "9999-12-01T00:00:00Z", "billing": "anniversary"}, "start_at"),
        ({"customer": "acme", "plan": "pro", "start_at": "2100-01-01T00:00:01Z"}, "start_at"),
        ({"customer": "acme", "plan": "pro", "start_at": "0001-01-01T00:00:00Z"}, "start_at"),
        ({"customer": "acme", "plan": "pro", "start_at": "1999-12-31T23:59:59Z", "pinned_version": 1}, "start_at"),
        ({"customer": "acme", "plan": "euro"}, "plan"),  # plan bills in EUR, customer pays in USD
        ({"customer": "acme", "plan": "pro", "pinned_version": 3}, "pinned_version"),  # a draft
    ],
)
def test_bad_subscription_input_is_a_400_naming_the_field(api, clock, plan, customer, body, field):
    PlanVersionFactory(plan=plan, number=3)  # draft
    PlanVersionFactory(plan=PlanFactory(key="draft-only"), number=1)
    euro = PlanFactory(key="euro", currency="EUR")
    PlanVersionFactory(plan=euro, number=1, published=True)
    response = api.post("/api/v1/subscriptions", body)
    assert response.status_code == 400, response.json()
    assert field in response.json()
    assert not Subscription.objects.exists()


def test_start_at_may_be_the_first_published_versions_effective_instant_not_before(api, clock, plan, customer):
    ok = api.post("/api/v1/subscriptions", {"customer": "acme", "plan": "pro", "start_at": "2025-01-01T00:00:00Z"})
    assert ok.status_code == 201, ok.json()
    early = api.post("/api/v1/subscriptions", {"customer": "acme", "plan": "pro", "start_at": "2024-12-31T23:59:59Z"})
    assert early.status_code == 400
    assert early.json()["start_at"] == [
        "The plan's first published version takes effect at 2025-01-01T00:00:00Z; a subscription cannot start "
        "before it."
    ]


def test_a_pinned_subscription_may_start_before_its_version_took_effect(api, clock, plan, customer):
    # Rule chosen: pinned means "every period bills with this version", whatever its effective_from.
    response = api.post(
        "/api/v1/subscriptions",
        {
            "customer": "acme",
            "plan": "pro",
            "start_at": "2024-06-01T00:00:00Z",
            "pinned_version": 1,
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["plan_version"], body["pinned_version"]) == (1, 1)
    assert (body["current_period_start"], body["current_period_end"]) == (
        "2024-06-01T00:00:00Z",
        "2024-07-01T00:00:00Z",
    )


def test_the_bounds_of_start_at_are_accepted(api, clock, customer):
    plan = PlanFactory(key="old", currency="USD")
    PlanVersionFactory(plan=plan, number=1, published=True, effective_from=datetime(2000, 1, 1, tzinfo=UTC))
    for start_at in ("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"):
        response = api.post(
            "/api/v1/subscriptions", {"customer": "acme", "plan": "old", "start_at": start_at, "billing": "anniversary"}
        )
        assert response.status_code == 201, response.json()
    # The latest start's first (monthly, anniversary) period ends a month later, far inside the calendar.
    assert response.json()["current_period_end"] == "2100-02-01T00:00:00Z"


def test_list_by_customer(api, clock, plan, customer):
    mine = subscribe(customer=customer, plan=plan)
    subscribe(customer=customer, plan=plan)  # a customer may hold several subscriptions to the same plan
    other = subscribe()
    listing = api.get("/api/v1/subscriptions", {"customer": "acme"}).json()
    assert listing["count"] == 2
    assert {r["customer"] for r in listing["results"]} == {"acme"}
    assert str(mine.pk) in {r["id"] for r in listing["results"]}
    assert api.get("/api/v1/subscriptions").json()["count"] == 3
    assert str(other.pk) not in {r["id"] for r in listing["results"]}
    response = api.get("/api/v1/subscriptions", {"customer": "ghost"})
    assert response.status_code == 400 and "customer" in response.json()


def test_unknown_subscription_is_a_404(api):
    assert api.get("/api/v1/subscriptions/999999").status_code == 404
    assert api.get("/api/v1/subscriptions/not-a-number").status_code == 404
    assert api.post("/api/v1/subscriptions/999999/cancel", {"at": "now"}).status_code == 404


def test_cancel_at_period_end_stays_active(api, clock, plan, customer):
    subscription = subscribe(customer=customer, plan=plan)
    response = api.post(f"/api/v1/subscriptions/{subscription.pk}/cancel", {"at": "period_end"})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["cancel_at_period_end"], body["ended_at"]) == ("active", True, None)
    assert body["canceled_at"] == "2026-01-20T12:00:00Z"


def test_cancel_now_ends_it_and_a_second_cancel_is_409(api, clock, plan, customer):
    subscription = subscribe(customer=customer, plan=plan)
    body = api.post(f"/api/v1/subscriptions/{subscription.pk}/cancel", {"at": "now"}).json()
    assert (body["status"], body["ended_at"]) == ("ended", "2026-01-20T12:00:00Z")
    again = api.post(f"/api/v1/subscriptions/{subscription.pk}/cancel", {"at": "now"})
    assert again.status_code == 409
    assert api.post(f"/api/v1/subscriptions/{subscription.pk}/cancel", {"at": "period_end"}).status_code == 409


def test_cancel_needs_a_valid_at(api, clock, plan, customer):
    subscription = subscribe(customer=customer, plan=plan)
    for body in ({}, {"at": "tomorrow"}):
        response = api.post(f"/api/v1/subscriptions/{subscription.pk}/cancel", body)
        assert response.status_code == 400 and "at" in response.json()


def test_schema_documents_the_subscription_shapes(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert "/api/v1/subscriptions/{subscription_id}/cancel" in schema["paths"]
    output = schema["components"]["schemas"]["SubscriptionOutput"]["properties"]
    assert {"id", "plan_version", "current_period_start", "current_period_end"} <= set(output)
    assert set(schema["components"]["schemas"]["CustomerCreateInputRequest"]["required"]) == {
        "external_id",
        "name",
        "currency",
    }
