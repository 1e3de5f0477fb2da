"""Regression tests for what the schema fuzz (tests/test_api_fuzz.py) found: bad input is a 400 naming the
field or a JSON 404, never a 500 or Django's HTML page."""

from __future__ import annotations

import pytest

from tests.factories.customers import CustomerFactory
from tests.factories.invoicing import plan_with_api_calls


@pytest.mark.django_db
def test_patch_customer_with_a_json_null_body_is_400(api):
    CustomerFactory(external_id="acme")
    response = api.patch("/api/v1/customers/acme", "null", content_type="application/json")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()


@pytest.mark.django_db
def test_nul_character_in_a_plan_version_is_400_naming_the_field(api):
    version, _ = plan_with_api_calls()
    body = {"prices": [{"name": "Fee\u0000", "model": "flat_fee", "amount": "10"}]}
    response = api.post(f"/api/v1/plans/{version.plan.key}/versions", body)
    assert response.status_code == 400, response.content
    assert response.json() == {"prices.0.name": ["NUL characters (\\u0000) are not allowed."]}


@pytest.mark.django_db
def test_nul_character_in_a_customer_name_is_400_naming_the_field(api):
    response = api.post("/api/v1/customers", {"external_id": "nul", "name": "A\u0000B", "currency": "USD"})
    assert response.status_code == 400, response.content
    assert "name" in response.json()


@pytest.mark.django_db
def test_nul_character_in_an_event_is_400_not_500(api):
    event = {"event_id": "e1", "customer": "c1", "event_name": "api_call", "properties": {"model": "gpt\u0000"}}
    response = api.post("/api/v1/events", event)
    assert response.status_code == 400, response.content


@pytest.mark.django_db
@pytest.mark.parametrize("number", ["AAA", "-1", "99999999999999999999"])
def test_a_version_number_that_is_not_a_number_is_a_json_404(api, number):
    version, _ = plan_with_api_calls()
    for method, path in [("get", ""), ("patch", ""), ("post", "/publish")]:
        response = getattr(api, method)(f"/api/v1/plans/{version.plan.key}/versions/{number}{path}", {})
        assert response.status_code == 404, (method, response.content)
        assert response["Content-Type"] == "application/json"
        assert response.json()["code"] == "not_found"


@pytest.mark.django_db
@pytest.mark.parametrize("value", [2.9910092306480277e256, "1e300", "-1e300"])
def test_huge_credit_numbers_are_400_naming_the_field(api, value):
    CustomerFactory(external_id="big")
    response = api.post("/api/v1/wallets", {"customer": "big", "currency": "USD", "low_balance_threshold": value})
    assert response.status_code == 400, response.content
    assert "low_balance_threshold" in response.json()
