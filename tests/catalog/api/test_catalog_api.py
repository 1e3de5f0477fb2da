"""The catalog endpoints of API.md, exactly as written, and every validation rule (400 naming the field)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from catalog.models import PlanVersion
from tests.factories.catalog import (
    EntitlementFactory,
    FeatureFactory,
    PlanCreditGrantFactory,
    PlanFactory,
    PlanVersionFactory,
)
from tests.factories.metering import MeterFactory

pytestmark = pytest.mark.django_db

TIERS = [
    {"up_to": 1000, "unit_amount": "1.00"},
    {"up_to": "5000", "unit_amount": "0.80", "flat_amount": "50"},
    {"up_to": None, "unit_amount": "0.50", "flat_amount": "100"},
]


@pytest.fixture
def meter():
    return MeterFactory(key="tokens", name="Tokens")


@pytest.fixture
def plan():
    return PlanFactory(key="starter", name="Starter", currency="USD")


def post_version(api, body, key="starter"):
    return api.post(f"/api/v1/plans/{key}/versions", body, format="json")


# ---------------------------------------------------------------- features


def test_feature_create_and_read_shapes(api, meter):
    r = api.post(
        "/api/v1/features",
        {"key": "tts", "name": "Text to speech", "type": "metered", "meter": "tokens", "unit_name": "characters"},
    )
    assert r.status_code == 201, r.json()
    body = r.json()
    assert {k: body[k] for k in ("key", "name", "type", "meter", "unit_name")} == {
        "key": "tts",
        "name": "Text to speech",
        "type": "metered",
        "meter": "tokens",
        "unit_name": "characters",
    }
    assert api.get("/api/v1/features/tts").json()["meter"] == "tokens"
    listing = api.get("/api/v1/features").json()
    assert set(listing) == {"count", "next", "previous", "results"}
    assert listing["count"] == 1
    r = api.post("/api/v1/features", {"key": "sso", "name": "SSO", "type": "boolean"})
    assert r.status_code == 201 and r.json()["meter"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "x", "name": "X", "type": "colour"}, "type"),
        ({"key": "x", "name": "X", "type": "metered"}, "meter"),
        ({"key": "x", "name": "X", "type": "metered", "meter": "nope"}, "meter"),
        ({"key": "x", "name": "X", "type": "boolean", "meter": "tokens"}, "meter"),
        ({"key": "x y", "name": "X", "type": "boolean"}, "key"),
        ({"name": "X", "type": "boolean"}, "key"),
    ],
)
def test_feature_validation_names_the_field(api, meter, body, field):
    r = api.post("/api/v1/features", body)
    assert r.status_code == 400
    assert field in r.json()


def test_feature_duplicate_key_is_400(api):
    FeatureFactory(key="sso")
    r = api.post("/api/v1/features", {"key": "sso", "name": "SSO", "type": "boolean"})
    assert r.status_code == 400 and "key" in r.json()


def test_unknown_feature_is_404(api):
    assert api.get("/api/v1/features/nope").status_code == 404


# ---------------------------------------------------------------- plans


def test_plan_create_and_read_shapes(api):
    r = api.post(
        "/api/v1/plans",
        {"key": "pro", "name": "Pro", "description": "For teams", "currency": "EUR", "interval": "year"},
    )
    assert r.status_code == 201, r.json()
    assert {k: r.json()[k] for k in ("key", "name", "description", "currency", "interval")} == {
        "key": "pro",
        "name": "Pro",
        "description": "For teams",
        "currency": "EUR",
        "interval": "year",
    }
    post_version(api, {"prices": [], "effective_from": "2026-01-01T00:00:00Z"}, key="pro")
    body = api.get("/api/v1/plans/pro").json()
    assert body["versions"] == [{"number": 1, "status": "draft", "effective_from": "2026-01-01T00:00:00Z"}]
    assert api.get("/api/v1/plans").json()["count"] == 1
    assert api.get("/api/v1/plans/nope").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "p", "name": "P", "currency": "XYZ"}, "currency"),
        ({"key": "p", "name": "P", "currency": "KWD"}, "currency"),  # a known code, not configured
        ({"key": "p", "name": "P", "currency": "USD", "interval": "fortnight"}, "interval"),
        ({"key": "p", "currency": "USD"}, "name"),
    ],
)
def test_plan_validation_names_the_field(api, body, field):
    r = api.post("/api/v1/plans", body)
    assert r.status_code == 400
    assert field in r.json()


def test_plan_duplicate_key_is_400(api, plan):
    r = api.post("/api/v1/plans", {"key": "starter", "name": "Again", "currency": "USD"})
    assert r.status_code == 400 and "key" in r.json()


def test_plan_interval_defaults_to_month(api):
    assert api.post("/api/v1/plans", {"key": "p", "name": "P", "currency": "USD"}).json()["interval"] == "month"


# ---------------------------------------------------------------- versions


def test_version_create_full_shape(api, plan, meter):
    FeatureFactory(key="tts", type="metered", meter=meter)
    FeatureFactory(key="audio", type="static")
    FeatureFactory(key="sso", type="boolean")
    r = post_version(
        api,
        {
            "prices": [
                {"name": "Base", "model": "flat_fee", "amount": "49"},
                {"name": "Tokens", "model": "per_unit", "meter": "tokens", "unit_amount": "0.000002"},
                {"name": "Packs", "model": "package", "meter": "tokens", "package_size": "1000", "package_amount": "5"},
                {"name": "Tiers", "model": "tiered", "meter": "tokens", "tier_mode": "graduated", "tiers": TIERS},
            ],
            "entitlements": [
                {"feature": "tts", "limit": "100"},
                {"feature": "audio", "value": "192kbps"},
                {"feature": "sso", "enabled": False},
            ],
            "credit_grants": [{"name": "Monthly", "credits": "2000", "rollover_cap": "2000"}],
            "effective_from": "2026-01-01T00:00:00Z",
        },
    )
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["number"] == 1 and body["status"] == "draft" and body["effective_from"] == "2026-01-01T00:00:00Z"
    prices = body["prices"]
    assert {k: prices[0][k] for k in ("name", "model", "meter", "timing", "amount")} == {
        "name": "Base",
        "model": "flat_fee",
        "meter": None,
        "timing": "in_advance",
        "amount": "49.00",
    }
    assert prices[1]["timing"] == "in_arrears" and prices[1]["unit_amount"] == "0.000002"
    assert (prices[2]["package_size"], prices[2]["package_amount"]) == ("1000", "5.00")
    assert prices[3]["tier_mode"] == "graduated"
    assert prices[3]["tiers"] == [
        {"up_to": "1000", "unit_amount": "1.00", "flat_amount": "0.00"},
        {"up_to": "5000", "unit_amount": "0.80", "flat_amount": "50.00"},
        {"up_to": None, "unit_amount": "0.50", "flat_amount": "100.00"},
    ]
    # Omitted optional fields take API.md's defaults; entitlements are listed by feature key.
    assert body["entitlements"] == [
        {
            "feature": "audio",
            "enabled": True,
            "limit": None,
            "reset": "billing_period",
            "soft": False,
            "value": "192kbps",
        },
        {"feature": "sso", "enabled": False, "limit": None, "reset": "billing_period", "soft": False, "value": ""},
        {"feature": "tts", "enabled": True, "limit": "100", "reset": "billing_period", "soft": False, "value": ""},
    ]
    assert body["credit_grants"] == [
        {
            "name": "Monthly",
            "credits": "2000",
            "cadence": "per_period",
            "rollover_cap": "2000",
            "expire_after_periods": None,
            "forfeit_on_end": True,
            "priority": 10,
        }
    ]
    assert api.get("/api/v1/plans/starter/versions/1").json() == body


def test_version_list_reads_in_fixed_queries(api, plan, meter):
    """``GET /plans/{key}/versions`` costs the same queries for 1 or 3 versions (no query per version)."""
    body = {
        "prices": [
            {"name": "Base", "model": "flat_fee", "amount": "10"},
            {"name": "Tiers", "model": "tiered", "meter": "tokens", "tier_mode": "volume", "tiers": TIERS},
        ]
    }
    post_version(api, body)
    with CaptureQueriesContext(connection) as one:
        first = api.get("/api/v1/plans/starter/versions")
    post_version(api, body)
    post_version(api, body)
    with CaptureQueriesContext(connection) as three:
        listed = api.get("/api/v1/plans/starter/versions")
    assert [v["number"] for v in first.json()] == [1]
    assert [v["number"] for v in listed.json()] == [1, 2, 3]
    assert listed.json()[2] == api.get("/api/v1/plans/starter/versions/3").json()
    assert len(three.captured_queries) == len(one.captured_queries)


def test_version_numbers_rise_and_publish_flag(api, plan):
    first = post_version(api, {"prices": [{"name": "Base", "model": "flat_fee", "amount": "10"}], "publish": True})
    assert first.status_code == 201
    assert (first.json()["number"], first.json()["status"]) == (1, "published")
    second = post_version(api, {})
    assert (second.json()["number"], second.json()["status"]) == (2, "draft")
    assert PlanVersion.objects.get(plan=plan, number=1).published_at is not None


def test_publish_then_publish_again_is_409(api, plan):
    post_version(api, {"prices": [{"name": "Base", "model": "flat_fee", "amount": "10"}]})
    r = api.post("/api/v1/plans/starter/versions/1/publish")
    assert r.status_code == 200 and r.json()["status"] == "published"
    again = api.post("/api/v1/plans/starter/versions/1/publish")
    assert again.status_code == 409


def test_published_version_cannot_be_edited_over_the_api(api, plan):
    post_version(api, {"prices": [{"name": "Base", "model": "flat_fee", "amount": "10"}], "publish": True})
    r = api.patch(
        "/api/v1/plans/starter/versions/1",
        {"prices": [{"name": "Base", "model": "flat_fee", "amount": "99"}]},
        format="json",
    )
    assert r.status_code == 409
    assert api.get("/api/v1/plans/starter/versions/1").json()["prices"][0]["amount"] == "10.00"


def test_draft_can_be_edited_over_the_api(api, plan):
    post_version(api, {"prices": [{"name": "Base", "model": "flat_fee", "amount": "10"}]})
    r = api.patch(
        "/api/v1/plans/starter/versions/1",
        {"prices": [{"name": "Base", "model": "flat_fee", "amount": "12.5"}]},
        format="json",
    )
    assert r.status_code == 200, r.json()
    assert [p["amount"] for p in r.json()["prices"]] == ["12.50"]


def test_unknown_plan_or_version_is_404(api, plan):
    assert post_version(api, {}, key="nope").status_code == 404
    assert api.get("/api/v1/plans/starter/versions/7").status_code == 404
    assert api.post("/api/v1/plans/starter/versions/7/publish").status_code == 404


def test_effective_from_may_be_in_the_past_and_defaults_to_now(api, plan):
    past = post_version(api, {"effective_from": "2020-03-01T00:00:00Z"}).json()
    assert past["effective_from"] == "2020-03-01T00:00:00Z"
    now = post_version(api, {}).json()
    assert now["effective_from"] > "2026-01-01"


def test_effective_from_out_of_range_is_refused_when_editing_a_draft_too(api, plan):
    post_version(api, {"effective_from": "2000-01-01T00:00:00Z"})
    r = api.patch("/api/v1/plans/starter/versions/1", {"effective_from": "9999-12-31T00:00:00Z"}, format="json")
    assert r.status_code == 400 and "effective_from" in r.json(), r.json()
    assert api.get("/api/v1/plans/starter/versions/1").json()["effective_from"] == "2000-01-01T00:00:00Z"


def flat(**extra):
    return {"name": "Base", "model": "flat_fee", "amount": "10", **extra}


def tiered(**extra):
    return {"name": "T", "model": "tiered", "meter": "tokens", "tier_mode": "volume", "tiers": TIERS, **extra}


@pytest.mark.parametrize(
    ("prices", "field"),
    [
        ([flat(), {"name": "X", "model": "bespoke", "meter": "tokens"}], "prices[1].model"),
        ([flat(timing="whenever")], "prices[0].timing"),
        ([flat(amount="-1")], "prices[0].amount"),
        ([flat(amount="ten")], "prices[0].amount"),
        ([flat(amount=None)], "prices[0].amount"),
        ([flat(amount="0.0000000000001")], "prices[0].amount"),
        ([flat(meter="tokens")], "prices[0].meter"),
        ([{"name": "U", "model": "per_unit", "unit_amount": "1"}], "prices[0].meter"),
        ([{"name": "U", "model": "per_unit", "meter": "ghost", "unit_amount": "1"}], "prices[0].meter"),
        ([{"name": "U", "model": "per_unit", "meter": "tokens", "unit_amount": "-0.01"}], "prices[0].unit_amount"),
        ([{"name": "P", "model": "package", "unit_amount": "1"}], "prices[0].meter"),
        (
            [{"name": "P", "model": "package", "meter": "tokens", "package_size": "0", "package_amount": "5"}],
            "prices[0].package_size",
        ),
        (
            [{"name": "P", "model": "package", "meter": "tokens", "package_size": "10", "package_amount": "-5"}],
            "prices[0].package_amount",
        ),
        ([tiered(meter=None)], "prices[0].meter"),
        ([tiered(tier_mode="stepped")], "prices[0].tier_mode"),
        ([tiered(tiers=[])], "prices[0].tiers"),
        (
            [
                flat(),
                tiered(
                    tiers=[
                        {"up_to": 100, "unit_amount": "1"},
                        {"up_to": 50, "unit_amount": "0.5"},
                        {"up_to": None, "unit_amount": "0.1"},
                    ]
                ),
            ],
            "prices[1].tiers",
        ),
        (
            [
                tiered(
                    tiers=[
                        {"up_to": 100, "unit_amount": "1"},
                        {"up_to": 100, "unit_amount": "0.5"},
                        {"up_to": None, "unit_amount": "0.1"},
                    ]
                )
            ],
            "prices[0].tiers",
        ),
        ([tiered(tiers=[{"up_to": 100, "unit_amount": "1"}, {"up_to": 500, "unit_amount": "0.5"}])], "prices[0].tiers"),
        (
            [tiered(tiers=[{"up_to": None, "unit_amount": "1"}, {"up_to": None, "unit_amount": "0.5"}])],
            "prices[0].tiers",
        ),
        ([tiered(tiers=[{"up_to": None, "unit_amount": "-1"}])], "prices[0].tiers[0].unit_amount"),
        ([tiered(tiers=[{"up_to": None, "unit_amount": "1", "flat_amount": "-3"}])], "prices[0].tiers[0].flat_amount"),
        (
            [tiered(tiers=[{"up_to": "lots", "unit_amount": "1"}, {"up_to": None, "unit_amount": "1"}])],
            "prices[0].tiers[0].up_to",
        ),
        ([flat(unit_amount="1")], "prices[0].unit_amount"),
    ],
)
def test_price_validation_names_the_field(api, plan, meter, prices, field):
    r = post_version(api, {"prices": prices})
    assert r.status_code == 400, r.json()
    assert field in r.json(), r.json()
    assert not PlanVersion.objects.filter(plan=plan).exists()  # nothing half-created


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"entitlements": [{"feature": "ghost"}]}, "entitlements[0].feature"),
        ({"entitlements": [{"feature": "tts"}, {"feature": "tts"}]}, "entitlements[1].feature"),
        ({"entitlements": [{"feature": "tts", "reset": "fortnight"}]}, "entitlements[0].reset"),
        ({"entitlements": [{"feature": "tts", "limit": "-1"}]}, "entitlements[0].limit"),
        ({"entitlements": [{"feature": "sso", "limit": "5"}]}, "entitlements[0].limit"),
        ({"entitlements": [{"feature": "audio"}]}, "entitlements[0].value"),
        ({"credit_grants": [{"name": "G", "credits": "-5"}]}, "credit_grants[0].credits"),
        ({"credit_grants": [{"name": "G"}]}, "credit_grants[0].credits"),
        ({"credit_grants": [{"name": "G", "credits": "5", "cadence": "weekly"}]}, "credit_grants[0].cadence"),
        ({"credit_grants": [{"name": "G", "credits": "5", "rollover_cap": "-1"}]}, "credit_grants[0].rollover_cap"),
        (
            {"credit_grants": [{"name": "G", "credits": "5", "expire_after_periods": 0}]},
            "credit_grants[0].expire_after_periods",
        ),
        ({"effective_from": "not a time"}, "effective_from"),
        # The expiry is computed period by period: 100,000 periods ran past year 9999 (a 500 at subscription start).
        (
            {"credit_grants": [{"name": "G", "credits": "5", "expire_after_periods": 100000}]},
            "credit_grants[0].expire_after_periods",
        ),
        # Outside 2000-01-01..2100-01-01 (core.instants): periods are computed from it.
        ({"effective_from": "9999-12-31T23:59:59Z", "publish": True}, "effective_from"),
        ({"effective_from": "0001-01-01T00:00:00Z", "publish": True}, "effective_from"),
        ({"effective_from": "1999-12-31T23:59:59Z"}, "effective_from"),
    ],
)
def test_entitlement_and_grant_validation_names_the_field(api, plan, meter, body, field):
    FeatureFactory(key="tts", type="metered", meter=meter)
    FeatureFactory(key="audio", type="static")
    FeatureFactory(key="sso", type="boolean")
    r = post_version(api, body)
    assert r.status_code == 400, r.json()
    assert field in r.json(), r.json()


def test_every_bad_field_is_named_at_once(api, plan):
    r = post_version(api, {"prices": [flat(amount="-1"), {"name": "U", "model": "per_unit", "unit_amount": "1"}]})
    assert r.status_code == 400
    assert {"prices[0].amount", "prices[1].meter"} <= set(r.json())


def test_version_requires_write_scope_and_key(anon_api, plan):
    assert anon_api.post("/api/v1/plans/starter/versions", {}, format="json").status_code == 401


def test_schema_documents_catalog_paths(api):
    from django.test import Client

    text = Client().get("/api/schema/").content.decode()
    for p in ("/api/v1/features", "/api/v1/plans/{key}/versions", "/api/v1/plans/{key}/versions/{number}/publish"):
        assert p in text


def test_publish_is_400_naming_an_invalid_entitlement_or_grant(api, plan):
    """A draft holding rows the API refuses (built with the ORM) is not published: 400 naming each row's field."""
    version = PlanVersionFactory(plan=plan, number=1)
    EntitlementFactory(plan_version=version, feature=FeatureFactory(key="chat"), limit="5")
    PlanCreditGrantFactory(plan_version=version, expire_after_periods=0)
    r = api.post("/api/v1/plans/starter/versions/1/publish")
    assert r.status_code == 400
    assert r.json()["entitlements[0].limit"] == ["A limit applies to metered features only; 'chat' is boolean."]
    assert r.json()["credit_grants[0].expire_after_periods"] == ["Must be at least 1."]
    version.refresh_from_db()
    assert version.status == PlanVersion.Status.DRAFT


def test_published_factory_version_is_409_on_publish(api):
    version = PlanVersionFactory(published=True, plan=PlanFactory(key="legacy"))
    assert api.post(f"/api/v1/plans/legacy/versions/{version.number}/publish").status_code == 409


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        # 201 prices: one over the bound of 200 per version
        ({"prices": [flat(name=f"Fee {i}") for i in range(201)]}, "prices", "At most 200 items; got 201."),
        ({"entitlements": [{"feature": f"f{i}"} for i in range(201)]}, "entitlements", "At most 200 items; got 201."),
        ({"credit_grants": [{"credits": "1"} for _ in range(51)]}, "credit_grants", "At most 50 items; got 51."),
        # 100 bounded tiers + the open one = 101 tiers, one over the bound of 100 per price
        (
            {
                "prices": [
                    {
                        "name": "Tokens",
                        "model": "tiered",
                        "meter": "tokens",
                        "tier_mode": "graduated",
                        "tiers": [{"up_to": i + 1, "unit_amount": "1"} for i in range(100)]
                        + [{"up_to": None, "unit_amount": "1"}],
                    }
                ]
            },
            "prices[0].tiers",
            "At most 100 items; got 101.",
        ),
    ],
)
def test_version_lists_are_bounded_400_naming_the_list(api, plan, meter, body, field, message):
    """A version with 20,000 prices made admin pages hang: the API refuses lists past their bound."""
    r = post_version(api, body)
    assert r.status_code == 400
    assert r.json()[field] == [message]
    assert not PlanVersion.objects.exists()


def test_version_lists_at_their_bound_are_accepted(api, plan):
    r = post_version(api, {"prices": [flat(name=f"Fee {i}") for i in range(200)]})
    assert r.status_code == 201
    assert len(r.json()["prices"]) == 200
