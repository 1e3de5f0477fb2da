"""API.md "Subscription changes and trials": a plan version accepts and shows ``trial_days``, on create and on the
PATCH of a draft (absent: unchanged; a whole number 0-365, else a 400 naming the field; published: 409)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils.dateparse import parse_datetime

from catalog.models import PlanVersion
from tests.factories.catalog import PlanFactory
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db

FEE = {"name": "Seat", "model": "flat_fee", "amount": "20.00"}
URL = "/api/v1/plans/team/versions/1"


@pytest.fixture(autouse=True)
def draft(api):
    PlanFactory(key="team", name="Team", currency="USD")
    r = api.post(
        "/api/v1/plans/team/versions", {"prices": [FEE], "effective_from": "2026-01-01T00:00:00Z"}, format="json"
    )
    assert r.status_code == 201, r.json()
    assert r.json()["trial_days"] == 0  # API.md: default 0


def test_patch_sets_the_trial_and_get_shows_it(api):
    r = api.patch(URL, {"trial_days": 14}, format="json")
    assert r.status_code == 200, r.json()
    assert r.json()["trial_days"] == 14
    assert api.get(URL).json()["trial_days"] == 14
    assert api.get("/api/v1/plans/team/versions").json()[0]["trial_days"] == 14
    # Absent on a later PATCH: unchanged.
    r = api.patch(URL, {"prices": [FEE | {"amount": "25.00"}]}, format="json")
    assert r.status_code == 200 and r.json()["trial_days"] == 14
    # 0 removes the trial; 365 is the longest one.
    assert api.patch(URL, {"trial_days": 0}, format="json").json()["trial_days"] == 0
    assert api.patch(URL, {"trial_days": 365}, format="json").json()["trial_days"] == 365


def test_new_subscriptions_get_the_edited_trial(api):
    assert api.patch(URL, {"trial_days": 14}, format="json").status_code == 200
    assert api.post("/api/v1/plans/team/versions/1/publish").status_code == 200
    CustomerFactory(external_id="acme", currency="USD")
    r = api.post(
        "/api/v1/subscriptions", {"customer": "acme", "plan": "team", "start_at": "2026-03-05T12:00:00Z"}, format="json"
    )
    assert r.status_code == 201, r.json()
    # 2026-03-05 12:00 + 14 days = 2026-03-19 12:00.
    start = parse_datetime("2026-03-05T12:00:00Z")
    assert parse_datetime(r.json()["trial_end"]) == start + timedelta(days=14)


@pytest.mark.parametrize("value", [-1, 366, 1.5, "14", True, None, [14]])
def test_a_bad_trial_is_a_400_naming_the_field_and_changes_nothing(api, value):
    assert api.patch(URL, {"trial_days": 7}, format="json").status_code == 200
    r = api.patch(URL, {"trial_days": value, "prices": [FEE | {"amount": "99.00"}]}, format="json")
    assert r.status_code == 400, r.json()
    assert "trial_days" in r.json()
    version = PlanVersion.objects.get(plan__key="team", number=1)
    assert version.trial_days == 7
    assert [p.amount for p in version.prices.all()] == [Decimal("20.00")]


def test_a_published_version_is_a_409(api):
    assert api.patch(URL, {"trial_days": 14}, format="json").status_code == 200
    assert api.post("/api/v1/plans/team/versions/1/publish").status_code == 200
    r = api.patch(URL, {"trial_days": 30}, format="json")
    assert r.status_code == 409, r.json()
    assert PlanVersion.objects.get(plan__key="team", number=1).trial_days == 14
