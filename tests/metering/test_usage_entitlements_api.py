"""GET /customers/{id}/usage and /customers/{id}/entitlements[/{feature}] (shared/API.md "Events and usage")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from customers.services import subscription_row_create
from tests.factories.catalog import EntitlementFactory, FeatureFactory, PlanVersionFactory, PriceFactory
from tests.factories.customers import CustomerFactory
from tests.factories.metering import EventFactory, MeterFactory

pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 10, tzinfo=UTC)


def subscribe(customer, version, start_at=START, billing="calendar"):
    with transaction.atomic():
        return subscription_row_create(customer=customer, plan=version.plan, start_at=start_at, billing=billing)


def calls(customer, n, at, name="api_call", **props):
    for _ in range(n):
        EventFactory(customer_external_id=customer.external_id, event_name=name, timestamp=at, properties=props)


@pytest.fixture
def setup():
    customer = CustomerFactory(external_id="acme")
    version = PlanVersionFactory(published=True)
    meter = MeterFactory(key="calls", event_name="api_call", aggregation="count")
    return customer, version, meter


# --- usage -----------------------------------------------------------------------------------------------------


def test_usage_defaults_to_the_current_billing_period_and_lists_priced_meters(api, setup):
    customer, version, meter = setup
    tokens = MeterFactory(key="tokens", event_name="completion", aggregation="sum", field="tokens")
    PriceFactory(plan_version=version, per_unit=True, meter=tokens)
    unrelated = MeterFactory(key="logins", event_name="login")
    subscribe(customer, version)  # calendar: [Jan 10, Feb 1)
    calls(customer, 3, START + timedelta(days=1))
    calls(customer, 2, START - timedelta(days=1))  # before the period
    calls(customer, 1, datetime(2026, 2, 1, tzinfo=UTC), name="login")  # after the period
    response = api.get("/api/v1/customers/acme/usage")
    assert response.status_code == 200
    assert response.json() == {
        "from": "2026-01-10T00:00:00Z",
        "to": "2026-02-01T00:00:00Z",
        # calls: 3 events in the period; tokens: priced, no events -> "0"; logins: no events in the window
        "meters": [{"meter": "calls", "value": "3"}, {"meter": "tokens", "value": "0"}],
    }
    assert unrelated.key not in str(response.json())


def test_usage_for_an_explicit_window(api, setup):
    customer, version, meter = setup
    calls(customer, 2, datetime(2026, 3, 5, tzinfo=UTC))
    calls(customer, 4, datetime(2026, 3, 20, tzinfo=UTC))
    response = api.get("/api/v1/customers/acme/usage", {"from": "2026-03-01T00:00:00Z", "to": "2026-03-10T00:00:00Z"})
    assert response.json()["meters"] == [{"meter": "calls", "value": "2"}]


@pytest.mark.parametrize("query", [{"from": "soon"}, {"to": "2026-99-01"}, {"from": "2026-03-10", "to": "2026-03-01"}])
def test_usage_bad_window_is_400(api, setup, query):
    response = api.get("/api/v1/customers/acme/usage", query)
    assert response.status_code == 400
    assert set(response.json()) & {"from", "to"}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        # Outside 2000-01-01..2100-01-01 (core.instants), the range of every accepted instant.
        ({"from": "0001-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "from"),
        ({"from": "2026-03-01T00:00:00Z", "to": "9999-12-31T23:59:59Z"}, "to"),
        ({"from": "9999-12-31T23:59:58Z"}, "from"),
    ],
)
def test_usage_window_out_of_range_is_400_naming_the_bound(api, setup, query, field):
    response = api.get("/api/v1/customers/acme/usage", query)
    assert response.status_code == 400
    assert field in response.json()


def test_usage_of_unknown_customer_is_404(api, db):
    assert api.get("/api/v1/customers/nobody/usage").status_code == 404
    assert api.get("/api/v1/customers/nobody/entitlements").status_code == 404


# --- entitlements ---------------------------------------------------------------------------------------------


def metered(version, meter, **kw):
    feature = FeatureFactory(key=kw.pop("key", "api-calls"), type="metered", meter=meter)
    return EntitlementFactory(plan_version=version, feature=feature, **kw)


def state(api, feature="api-calls", customer="acme"):
    response = api.get(f"/api/v1/customers/{customer}/entitlements/{feature}")
    assert response.status_code == 200, response.json()
    return response.json()


def test_hard_limit_in_the_billing_period(api, setup):
    customer, version, meter = setup
    metered(version, meter, limit=Decimal(5), reset="billing_period")
    subscribe(customer, version)
    calls(customer, 3, START + timedelta(days=2))
    assert state(api) == {
        "feature": "api-calls",
        "type": "metered",
        "enabled": True,
        "value": None,
        "limit": "5",
        "usage": "3",
        "remaining": "2",
        "soft": False,
        "allowed": True,
        "window_start": "2026-01-10T00:00:00Z",
        "window_end": "2026-02-01T00:00:00Z",
    }
    calls(customer, 2, START + timedelta(days=3))
    # usage 5 = limit: remaining 0, a hard limit refuses
    s = state(api)
    assert (s["usage"], s["remaining"], s["allowed"]) == ("5", "0", False)
    calls(customer, 4, START + timedelta(days=4))
    s = state(api)
    assert (s["usage"], s["remaining"], s["allowed"]) == ("9", "0", False)  # remaining never below 0


def test_soft_limit_is_allowed_past_the_limit(api, setup):
    customer, version, meter = setup
    metered(version, meter, limit=Decimal(2), soft=True)
    subscribe(customer, version)
    calls(customer, 3, START + timedelta(days=1))
    s = state(api)
    assert (s["usage"], s["remaining"], s["soft"], s["allowed"]) == ("3", "0", True, True)


def test_unlimited(api, setup):
    customer, version, meter = setup
    metered(version, meter, limit=None)
    subscribe(customer, version)
    calls(customer, 7, START + timedelta(days=1))
    s = state(api)
    assert (s["limit"], s["usage"], s["remaining"], s["allowed"]) == (None, "7", None, True)


def test_disabled_metered_feature_is_not_allowed(api, setup):
    customer, version, meter = setup
    metered(version, meter, limit=None, enabled=False)
    subscribe(customer, version)
    assert state(api)["allowed"] is False


@pytest.mark.parametrize(
    ("reset", "expected"),
    [
        # events: 1 today, 2 earlier this week but not today (Monday excepted), 4 earlier this month, 8 last year
        ("day", lambda now: (now.replace(hour=0, minute=0, second=0, microsecond=0), timedelta(days=1))),
        (
            "week",
            lambda now: (
                (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0),
                timedelta(days=7),
            ),
        ),
        ("month", lambda now: (now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), None)),
    ],
)
def test_calendar_reset_windows(api, setup, reset, expected):
    customer, version, meter = setup
    metered(version, meter, limit=Decimal(100), reset=reset)
    subscribe(customer, version, start_at=datetime(2020, 1, 1, tzinfo=UTC))
    now = timezone.now()
    window_start, length = expected(now)
    calls(customer, 1, window_start)  # first instant of the window: counts
    calls(customer, 2, window_start - timedelta(microseconds=1))  # just before: does not
    s = state(api)
    assert s["usage"] == "1"
    assert s["window_start"] == window_start.isoformat().replace("+00:00", "Z")
    if length is not None:
        assert s["window_end"] == (window_start + length).isoformat().replace("+00:00", "Z")


def test_never_reset_counts_everything_since_the_subscription_started(api, setup):
    customer, version, meter = setup
    metered(version, meter, limit=Decimal(10), reset="never")
    subscribe(customer, version, start_at=datetime(2024, 6, 1, tzinfo=UTC))
    calls(customer, 2, datetime(2024, 7, 1, tzinfo=UTC))
    calls(customer, 3, datetime(2025, 7, 1, tzinfo=UTC))
    calls(customer, 5, datetime(2024, 5, 31, tzinfo=UTC))  # before the subscription
    s = state(api)
    # 2 + 3 = 5 used, 10 - 5 = 5 remaining
    assert (s["usage"], s["remaining"], s["window_start"], s["window_end"]) == ("5", "5", "2024-06-01T00:00:00Z", None)


def test_boolean_and_static_features(api, setup):
    customer, version, _ = setup
    EntitlementFactory(plan_version=version, feature=FeatureFactory(key="sso", type="boolean"), enabled=True)
    EntitlementFactory(plan_version=version, feature=FeatureFactory(key="audit-log", type="boolean"), enabled=False)
    EntitlementFactory(plan_version=version, feature=FeatureFactory(key="audio", type="static"), value="192kbps")
    subscribe(customer, version)
    listing = api.get("/api/v1/customers/acme/entitlements").json()["entitlements"]
    assert [(e["feature"], e["type"], e["enabled"], e["allowed"], e["value"]) for e in listing] == [
        ("audio", "static", True, True, "192kbps"),
        ("audit-log", "boolean", False, False, None),
        ("sso", "boolean", True, True, None),
    ]
    assert state(api, "sso")["limit"] is None


def test_no_active_subscription_has_no_entitlements(api, setup):
    customer, version, meter = setup
    metered(version, meter, limit=Decimal(5))
    assert api.get("/api/v1/customers/acme/entitlements").json() == {"entitlements": []}
    assert api.get("/api/v1/customers/acme/entitlements/api-calls").status_code == 404


def test_ended_subscription_gives_no_entitlements(api, setup):
    customer, version, meter = setup
    metered(version, meter, limit=Decimal(5))
    sub = subscribe(customer, version)
    sub.status = "ended"
    sub.save(update_fields=["status"])
    assert api.get("/api/v1/customers/acme/entitlements").json() == {"entitlements": []}


def test_feature_not_entitled_is_404(api, setup):
    customer, version, meter = setup
    subscribe(customer, version)
    assert api.get("/api/v1/customers/acme/entitlements/api-calls").status_code == 404


def test_two_subscriptions_entitling_a_feature_the_most_generous_wins(api, setup):
    customer, version, meter = setup
    other = PlanVersionFactory(published=True)
    entitlement = metered(version, meter, limit=Decimal(5))
    EntitlementFactory(plan_version=other, feature=entitlement.feature, limit=Decimal(50))
    subscribe(customer, version)
    subscribe(customer, other)
    assert state(api)["limit"] == "50"
