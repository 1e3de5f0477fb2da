"""POST/GET /meters and GET /meters/{key} (shared/API.md "Catalog")."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def meter(**kw):
    return {"key": "tokens", "name": "Tokens", "event_name": "api_call", "aggregation": "sum", "field": "tokens", **kw}


def test_create_and_read_a_meter(api):
    body = meter(
        key="gpt-tokens",
        aggregation="sum_with_multiplier",
        multiplier="2",
        filters=[{"property": "model", "values": ["gpt-4o", "gpt-4o-mini"]}],
    )
    response = api.post("/api/v1/meters", body)
    assert response.status_code == 201
    expected = {
        "key": "gpt-tokens",
        "name": "Tokens",
        "event_name": "api_call",
        "aggregation": "sum_with_multiplier",
        "field": "tokens",
        "multiplier": "2",
        "filters": [{"property": "model", "values": ["gpt-4o", "gpt-4o-mini"]}],
        "allow_negative": False,
    }
    assert response.json() == expected
    assert api.get("/api/v1/meters/gpt-tokens").json() == expected
    listing = api.get("/api/v1/meters").json()
    assert listing["count"] == 1 and listing["results"] == [expected]


def test_allow_negative_is_stored_and_shown(api):
    response = api.post("/api/v1/meters", meter(key="credits-used", allow_negative=True))
    assert response.status_code == 201
    assert response.json()["allow_negative"] is True
    assert api.get("/api/v1/meters/credits-used").json()["allow_negative"] is True


def test_count_meter_needs_no_field(api):
    response = api.post(
        "/api/v1/meters", {"key": "calls", "name": "Calls", "event_name": "api_call", "aggregation": "count"}
    )
    assert response.status_code == 201
    assert (
        response.json()["field"] is None and response.json()["multiplier"] is None and response.json()["filters"] == []
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (meter(aggregation="median"), "aggregation"),
        (meter(field=""), "field"),
        (meter(aggregation="count_unique", field=None), "field"),
        (meter(aggregation="count", field="tokens"), "field"),
        (meter(aggregation="sum_with_multiplier"), "multiplier"),
        (meter(aggregation="sum_with_multiplier", multiplier="two"), "multiplier"),
        (meter(aggregation="sum_with_multiplier", multiplier="-1"), "multiplier"),
        (meter(multiplier="2"), "multiplier"),
        # the multiplier is stored exactly or refused: 1e-30 would be stored as 0, 1e1000000 overflowed (500)
        (meter(aggregation="sum_with_multiplier", multiplier="0.0000000000001"), "multiplier"),
        (meter(aggregation="sum_with_multiplier", multiplier="1e-30"), "multiplier"),
        (meter(aggregation="sum_with_multiplier", multiplier="1e1000000"), "multiplier"),
        (meter(aggregation="sum_with_multiplier", multiplier="10000000000000000"), "multiplier"),
        (meter(aggregation="sum_with_multiplier", multiplier="\u0662"), "multiplier"),  # Arabic-Indic 2
        (meter(aggregation="sum_with_multiplier", multiplier="1_0"), "multiplier"),
        (meter(aggregation="sum_with_multiplier", multiplier=" 2"), "multiplier"),
        (meter(filters={"model": "x"}), "filters"),
        (meter(filters=[{"property": "model"}]), "filters"),
        (meter(filters=[{"property": "model", "values": []}]), "filters"),
        (meter(filters=[{"property": "model", "values": [1]}]), "filters"),
        (meter(filters=[{"property": "", "values": ["a"]}]), "filters"),
        (meter(filters=["model"]), "filters"),
        (meter(key="not a slug"), "key"),
        ({"name": "x", "event_name": "e", "aggregation": "count"}, "key"),
    ],
)
def test_invalid_meter_is_400_naming_the_field(api, body, field):
    response = api.post("/api/v1/meters", body)
    assert response.status_code == 400, response.json()
    assert field in response.json()


def test_duplicate_key_is_400(api):
    assert api.post("/api/v1/meters", meter()).status_code == 201
    response = api.post("/api/v1/meters", meter())
    assert response.status_code == 400
    assert "key" in response.json()


def test_unknown_meter_is_404(api):
    assert api.get("/api/v1/meters/nope").status_code == 404


def test_schema_documents_the_metering_endpoints(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    text = response.content.decode()
    for path in (
        "/api/v1/meters",
        "/api/v1/events/batch",
        "/api/v1/customers/{external_id}/usage",
        "/api/v1/customers/{external_id}/entitlements/{feature}",
    ):
        assert path in text


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ([{"property": f"p{i}", "values": ["a"]} for i in range(21)], "At most 20 filters; got 21."),
        ([{"property": "model", "values": [f"v{i}" for i in range(101)]}], "Filter 0: at most 100 values; got 101."),
    ],
)
def test_meter_filters_are_bounded_400_naming_filters(api, filters, message):
    response = api.post("/api/v1/meters", meter(filters=filters))
    assert response.status_code == 400
    assert message in str(response.json()["filters"])
    # at the bounds: 20 filters of 100 values each
    at_bound = [{"property": f"p{i}", "values": [f"v{j}" for j in range(100)]} for i in range(20)]
    assert api.post("/api/v1/meters", meter(filters=at_bound)).status_code == 201
