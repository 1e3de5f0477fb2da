"""API.md "Commitments and progressive billing": the version fields, shown and refused (400 naming the field)."""

from __future__ import annotations

import pytest

from catalog.models import PlanVersion
from tests.factories.catalog import PlanFactory
from tests.factories.metering import MeterFactory

pytestmark = pytest.mark.django_db

USAGE = {"name": "Tokens", "model": "per_unit", "meter": "tokens", "unit_amount": "0.0002"}
FEE = {"name": "Seat", "model": "flat_fee", "amount": "31.00", "timing": "in_arrears"}


@pytest.fixture(autouse=True)
def catalog():
    MeterFactory(key="tokens", name="Tokens")
    PlanFactory(key="gpu", name="GPU", currency="USD")


def post(api, **body):
    return api.post("/api/v1/plans/gpu/versions", {"prices": [FEE, USAGE], **body}, format="json")


def test_fields_are_accepted_and_shown(api):
    thresholds = [{"amount": "200", "recurring": False}, {"amount": "1000.5", "recurring": True}]
    r = post(api, minimum_commitment="10000", progressive_thresholds=thresholds, publish=True)
    assert r.status_code == 201, r.json()
    body = r.json()
    # Money keeps the currency's minor unit: 10000 -> "10000.00", 1000.5 -> "1000.50".
    assert body["minimum_commitment"] == "10000.00"
    assert body["progressive_thresholds"] == [
        {"amount": "200.00", "recurring": False},
        {"amount": "1000.50", "recurring": True},
    ]
    assert api.get("/api/v1/plans/gpu/versions/1").json()["progressive_thresholds"] == body["progressive_thresholds"]


def test_defaults_are_none_and_empty(api):
    body = post(api).json()
    assert (body["minimum_commitment"], body["progressive_thresholds"]) == (None, [])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"minimum_commitment": "0"}, "minimum_commitment"),
        ({"minimum_commitment": "-5"}, "minimum_commitment"),
        ({"minimum_commitment": 12.5}, "minimum_commitment"),
        ({"progressive_thresholds": [{"amount": "0"}]}, "progressive_thresholds"),
        ({"progressive_thresholds": [{"amount": "-1"}]}, "progressive_thresholds"),
        ({"progressive_thresholds": [{"amount": "5"}, {"amount": "5"}]}, "progressive_thresholds"),
        ({"progressive_thresholds": [{"amount": "9"}, {"amount": "5"}]}, "progressive_thresholds"),
        (
            {"progressive_thresholds": [{"amount": "5", "recurring": True}, {"amount": "9", "recurring": True}]},
            "progressive_thresholds",
        ),
        ({"progressive_thresholds": [{"amount": "5", "recurring": True}, {"amount": "9"}]}, "progressive_thresholds"),
        ({"progressive_thresholds": [{"amount": "5", "recurring": "yes"}]}, "progressive_thresholds"),
        ({"progressive_thresholds": "200"}, "progressive_thresholds"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, body, field):
    r = post(api, **body)
    assert r.status_code == 400, r.json()
    assert field in r.json()
    assert not PlanVersion.objects.exists()


def test_thresholds_need_a_usage_price(api):
    r = api.post(
        "/api/v1/plans/gpu/versions",
        {"prices": [FEE], "progressive_thresholds": [{"amount": "200"}]},
        format="json",
    )
    assert r.status_code == 400
    assert r.json()["progressive_thresholds"] == [
        "Progressive billing invoices usage: this version has no usage price."
    ]
    # Removing the usage price of a draft with thresholds is refused the same way.
    assert post(api, progressive_thresholds=[{"amount": "200"}]).status_code == 201
    r = api.patch("/api/v1/plans/gpu/versions/1", {"prices": [FEE]}, format="json")
    assert r.status_code == 400 and "progressive_thresholds" in r.json()


def test_patch_changes_and_clears_them_on_a_draft(api):
    assert post(api, minimum_commitment="100").status_code == 201
    r = api.patch(
        "/api/v1/plans/gpu/versions/1",
        {"minimum_commitment": None, "progressive_thresholds": [{"amount": "50"}]},
        format="json",
    )
    assert r.status_code == 200, r.json()
    assert (r.json()["minimum_commitment"], r.json()["progressive_thresholds"]) == (
        None,
        [{"amount": "50.00", "recurring": False}],
    )
    api.post("/api/v1/plans/gpu/versions/1/publish")
    assert api.patch("/api/v1/plans/gpu/versions/1", {"minimum_commitment": "5"}, format="json").status_code == 409
