"""Input bounds shared by every endpoint (API.md "Conventions"): JSON depth, content type, numbers, text.

Each case was a 500, or a value silently changed, before the shared parser and number fields.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from catalog.models import Plan, PlanVersion
from metering.models import Event, Meter

pytestmark = pytest.mark.django_db


def post_raw(api, path: str, body: str | bytes, content_type: str = "application/json"):
    return api.post(f"/api/v1/{path}", data=body, content_type=content_type)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- JSON nesting ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["customers", "plans", "meters", "wallets", "events", "events/batch"])
@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_a_body_nested_deeper_than_32_levels_is_400(api, path, depth):
    # 1,000 levels made the JSON decoders raise RecursionError (a 500)
    response = post_raw(api, path, '{"name": ' + nested(depth - 1) + "}")
    assert response.status_code == 400, response.content
    assert "32" in json.dumps(response.json())


def test_32_levels_are_parsed(api):
    # depth 32 = the object plus 31 arrays: parsed, then refused by the field's own rule
    response = post_raw(api, "customers", '{"name": ' + nested(31) + "}")
    assert response.status_code == 400
    assert "name" in response.json()
    event = {"event_id": "deep", "customer": "c1", "event_name": "x", "properties": {"a": json.loads(nested(30))}}
    assert post_raw(api, "events", json.dumps(event)).status_code == 201


def test_brackets_inside_strings_do_not_count(api):
    name = "[" * 100 + "{" * 100
    body = {"key": "brackets", "name": name, "currency": "USD"}
    assert post_raw(api, "plans", json.dumps(body)).status_code == 201
    assert Plan.objects.get(key="brackets").name == name


# --- content type ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["events", "events/batch"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_ingestion_takes_json_only(api, path, content_type):
    event = {"event_id": "e1", "customer": "c1", "event_name": "api_call"}
    body = json.dumps(event if path == "events" else {"events": [event]})
    response = post_raw(api, path, body, content_type=content_type)
    assert response.status_code == 415
    assert not Event.objects.exists()
    assert post_raw(api, path, body, content_type="application/json; charset=utf-8").status_code in (200, 201)


# --- numbers --------------------------------------------------------------------------------------------------


def version_with(api, price: dict):
    api.post(
        "/api/v1/meters",
        {"key": "tokens", "name": "Tokens", "event_name": "api_call", "aggregation": "sum", "field": "tokens"},
        format="json",
    )
    if not Plan.objects.filter(key="p").exists():
        assert api.post("/api/v1/plans", {"key": "p", "name": "P", "currency": "USD"}, format="json").status_code == 201
    return api.post("/api/v1/plans/p/versions", {"prices": [price]}, format="json")


BAD_DECIMALS = [
    "1e1000000",  # decimal.Overflow (500) before
    "1e1",  # exponent
    "1_0",  # digit separator
    "\u0661\u0660",  # Arabic-Indic 10
    "\uff11\uff10",  # fullwidth 10
    " 10",
    "10\n",
    "0.0000000000001",  # 13 places: would be stored rounded
    "12345678901234567",  # 17 digits before the point
    "NaN",
    "",
    2.5,  # a JSON float: decimals with a fraction travel as strings
    True,
]


@pytest.mark.parametrize("value", BAD_DECIMALS)
@pytest.mark.parametrize(
    ("price", "field"),
    [
        ({"name": "Fee", "model": "flat_fee"}, "amount"),
        ({"name": "U", "model": "per_unit", "meter": "tokens"}, "unit_amount"),
        ({"name": "P", "model": "package", "meter": "tokens", "package_amount": "1"}, "package_size"),
    ],
)
def test_catalog_decimals_are_ascii_and_fit(api, value, price, field):
    response = version_with(api, {**price, field: value})
    assert response.status_code == 400, response.json()
    assert f"prices[0].{field}" in response.json()
    assert not PlanVersion.objects.exists()


@pytest.mark.parametrize("value", BAD_DECIMALS)
def test_tier_bounds_and_amounts_are_ascii_and_fit(api, value):
    tiers = [{"up_to": value, "unit_amount": "1"}, {"up_to": None, "unit_amount": value, "flat_amount": value}]
    response = version_with(
        api, {"name": "T", "model": "tiered", "meter": "tokens", "tier_mode": "volume", "tiers": tiers}
    )
    assert response.status_code == 400
    fields = set(response.json())
    assert {"prices[0].tiers[0].up_to", "prices[0].tiers[1].unit_amount", "prices[0].tiers[1].flat_amount"} <= fields


def test_catalog_takes_decimal_text_and_json_integers(api):
    tiers = [{"up_to": 5000, "unit_amount": "0.000002"}, {"up_to": None, "unit_amount": "+0.5", "flat_amount": "5."}]
    response = version_with(
        api, {"name": "T", "model": "tiered", "meter": "tokens", "tier_mode": "graduated", "tiers": tiers}
    )
    assert response.status_code == 201, response.json()
    assert response.json()["prices"][0]["tiers"] == [
        {"up_to": "5000", "unit_amount": "0.000002", "flat_amount": "0.00"},
        {"up_to": None, "unit_amount": "0.50", "flat_amount": "5.00"},
    ]


@pytest.mark.parametrize("value", ["1e1000000", "1e1", "\u0662", "1_0", "0.00000000000001", 0.5])
def test_grant_and_entitlement_decimals(api, value):
    api.post("/api/v1/plans", {"key": "p", "name": "P", "currency": "USD"}, format="json")
    response = api.post(
        "/api/v1/plans/p/versions", {"credit_grants": [{"credits": value, "rollover_cap": value}]}, format="json"
    )
    assert response.status_code == 400
    assert {"credit_grants[0].credits", "credit_grants[0].rollover_cap"} <= set(response.json())


@pytest.mark.parametrize("value", ["5", 5.0, "\u0665", True, 1e1, 2**40])
def test_whole_numbers_are_json_integers(api, value):
    api.post("/api/v1/plans", {"key": "p", "name": "P", "currency": "USD"}, format="json")
    grant = {"credits": "10", "priority": value, "expire_after_periods": value}
    response = api.post("/api/v1/plans/p/versions", {"credit_grants": [grant]}, format="json")
    assert response.status_code == 400
    assert {"credit_grants[0].priority", "credit_grants[0].expire_after_periods"} <= set(response.json())


CUSTOMER = {"external_id": "acme", "name": "Acme", "currency": "USD"}


@pytest.mark.parametrize("value", ["\u0665", "1e1", "5", 5.0, True, 366, -1, "\uff15"])
@pytest.mark.parametrize("field", ["net_payment_terms", "invoice_grace_days"])
def test_customer_day_counts(api, field, value):
    response = api.post("/api/v1/customers", {**CUSTOMER, field: value}, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_customer_day_counts_accept_0_to_365(api):
    response = api.post(
        "/api/v1/customers", {**CUSTOMER, "net_payment_terms": 365, "invoice_grace_days": 0}, format="json"
    )
    assert response.status_code == 201
    assert (response.json()["net_payment_terms"], response.json()["invoice_grace_days"]) == (365, 0)


@pytest.mark.parametrize("value", ["\u0662\u0660", "1e1", "1_0", "20 ", 20.5, "100.00001", "101", "-1"])
def test_tax_rate_percentage(api, value):
    response = api.post("/api/v1/tax_rates", {"code": "vat", "name": "VAT", "percentage": value}, format="json")
    assert response.status_code == 400
    assert "percentage" in response.json()


@pytest.mark.parametrize("value", ["1e-30", "1e1000000", "\u0662", "1_0", "0.0000000000001", 0.5, "0"])
@pytest.mark.parametrize("field", ["conversion_rate", "auto_top_up_credits"])
def test_wallet_decimals(api, field, value):
    from tests.factories.customers import CustomerFactory

    CustomerFactory(external_id="acme")
    response = api.post("/api/v1/wallets", {"customer": "acme", "currency": "USD", field: value}, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_a_grant_past_the_balance_column_is_400_naming_credits(api):
    # two grants of 9,999,999,999,999,999 credits: the second would take the balance past numeric(28, 12)
    # (the database refused the update: a 400 that named no field)
    from tests.factories.customers import CustomerFactory

    CustomerFactory(external_id="acme")
    wallet = api.post("/api/v1/wallets", {"customer": "acme", "currency": "USD"}, format="json").json()
    grant = {"credits": "9999999999999999", "kind": "paid"}
    assert api.post(f"/api/v1/wallets/{wallet['id']}/grants", grant, format="json").status_code == 201
    response = api.post(f"/api/v1/wallets/{wallet['id']}/grants", grant, format="json")
    assert response.status_code == 400 and "credits" in response.json()
    assert api.get(f"/api/v1/wallets/{wallet['id']}").json()["balance"] == "9999999999999999"


def test_meter_multiplier_is_stored_exactly_or_refused(api):
    body = {"key": "m", "name": "M", "event_name": "e", "aggregation": "sum_with_multiplier", "field": "n"}
    response = api.post("/api/v1/meters", {**body, "multiplier": "1e-30"}, format="json")
    assert response.status_code == 400 and "multiplier" in response.json()  # was stored as 0
    response = api.post("/api/v1/meters", {**body, "multiplier": "0.000000000001"}, format="json")
    assert response.status_code == 201
    assert Meter.objects.get(key="m").multiplier == Decimal("0.000000000001")


# --- text -----------------------------------------------------------------------------------------------------


def test_nul_in_catalog_strings_is_400_naming_the_field(api):
    response = api.post("/api/v1/plans", {"key": "p", "name": "a\x00b", "currency": "USD"}, format="json")
    assert response.status_code == 400 and "name" in response.json()
    assert api.post("/api/v1/plans", {"key": "p", "name": "P", "currency": "USD"}, format="json").status_code == 201
    response = api.post(
        "/api/v1/plans/p/versions", {"prices": [{"name": "a\x00b", "model": "flat_fee", "amount": "1"}]}, format="json"
    )
    assert response.status_code == 400
    assert not PlanVersion.objects.exists()


def test_lone_surrogates_are_400(api):
    # a lone UTF-16 surrogate is valid JSON escaping but not text; in a catalog price name it reached the
    # database driver (UnicodeEncodeError, a 500)
    assert api.post("/api/v1/plans", {"key": "p", "name": "P", "currency": "USD"}, format="json").status_code == 201
    body = '{"prices": [{"name": "\\udfff", "model": "flat_fee", "amount": "1"}]}'
    response = post_raw(api, "plans/p/versions", body)
    assert response.status_code == 400
    assert not PlanVersion.objects.exists()
    assert post_raw(api, "plans", '{"key": "q", "name": "\\ud800", "currency": "USD"}').status_code == 400
    # a well-formed pair is text
    response = post_raw(api, "plans", '{"key": "r", "name": "\\ud83d\\ude00", "currency": "USD"}')
    assert response.status_code == 201 and Plan.objects.get(key="r").name == "\U0001f600"


# --- what the schema says about text, booleans, choices and list parameters ------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("plans", {"key": "p", "name": "P", "currency": "USD", "description": 0}, "description"),  # stored "0"
        ("plans", {"key": "p", "name": 5, "currency": "USD"}, "name"),
        ("plans", {"key": 5, "name": "P", "currency": "USD"}, "key"),
        ("plans", {"key": " p", "name": "P", "currency": "USD"}, "key"),  # was trimmed and accepted
        ("plans", {"key": "p", "name": "P", "currency": "usd"}, "currency"),
        ("plans", {"key": "p", "name": "P", "currency": "KWD"}, "currency"),  # known, not configured
        ("customers", {**CUSTOMER, "tax_rates": [1]}, "tax_rates"),
        ("customers", {**CUSTOMER, "external_id": 7}, "external_id"),
        (
            "meters",
            {"key": "m", "name": "M", "event_name": "e", "aggregation": "count", "allow_negative": "yes"},
            "allow_negative",
        ),
        (
            "meters",
            {"key": "m", "name": "M", "event_name": "e", "aggregation": "count", "allow_negative": 1},
            "allow_negative",
        ),
        (
            "meters",
            {
                "key": "m",
                "name": "M",
                "event_name": "e",
                "aggregation": "count",
                "filters": [{"property": "model", "values": []}],
            },
            "filters",
        ),
        ("plans/p/versions", {"publish": "true"}, "publish"),
    ],
)
def test_types_are_the_schemas(api, path, body, field):
    if path.startswith("plans/p"):
        api.post("/api/v1/plans", {"key": "p", "name": "P", "currency": "USD"}, format="json")
    response = api.post(f"/api/v1/{path}", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()


@pytest.mark.parametrize(
    "query", ["offset=null", "offset=-1", "limit=0", "limit=abc", "offset=2147483648", "limit=1.5", "offset=\u0665"]
)
def test_bad_pagination_is_400_naming_the_parameter(api, query):
    # DRF fell back to its default page: a 200 for a request the schema refuses
    response = api.get(f"/api/v1/customers?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()


def test_pagination_bounds(api):
    from tests.factories.customers import CustomerFactory

    for i in range(3):
        CustomerFactory(external_id=f"c{i}")
    page = api.get("/api/v1/customers?limit=5000&offset=2").json()  # above 1,000 reads as 1,000
    assert (page["count"], len(page["results"])) == (3, 1)


def test_empty_list_filters_mean_any(api):
    assert api.get("/api/v1/invoices?status=&customer=&subscription=").status_code == 200
    assert api.get("/api/v1/invoices?subscription=abc").status_code == 400


def test_an_empty_usage_window_bound_is_400(api):
    from tests.factories.customers import CustomerFactory

    CustomerFactory(external_id="acme")
    assert api.get("/api/v1/customers/acme/usage?from=").status_code == 400


def test_a_domain_error_on_a_field_named_code_keeps_its_message(api):
    # the error's own "code" key overwrote the field's messages: {"code": "invalid"} named nothing
    body = {"code": "vat", "name": "VAT", "percentage": "20"}
    assert api.post("/api/v1/tax_rates", body, format="json").status_code == 201
    response = api.post("/api/v1/tax_rates", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == ["A tax rate with code 'vat' already exists."]


@pytest.mark.parametrize(("event_id", "ok"), [(0, True), (2**63 - 1, True), (-1, False), (2**63, False)])
def test_integer_event_ids(api, event_id, ok):
    body = {"event_id": event_id, "customer": "c1", "event_name": "e"}
    response = post_raw(api, "events", json.dumps(body))
    assert response.status_code == (201 if ok else 400)
    if not ok:
        assert "event_id" in response.json()


def test_event_timestamp_is_iso_8601_as_sent(api):
    body = {"event_id": "e1", "customer": "c1", "event_name": "e", "timestamp": " 2026-01-15T10:00:00Z"}
    response = post_raw(api, "events", json.dumps(body))
    assert response.status_code == 400 and "timestamp" in response.json()
