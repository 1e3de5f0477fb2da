"""What subscriptions already depend on cannot change under them (catalog/services.py, docs/billing-rules.md
"Catalog edits"): a plan's currency and interval once a version is published, a feature's type and meter once a
published version entitles it. Names and descriptions stay editable; drafts alone fix nothing."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.urls import reverse

from catalog import services
from catalog.errors import CatalogInvalid
from catalog.models import Feature, Plan
from tests.factories.catalog import EntitlementFactory, FeatureFactory, PlanFactory, PlanVersionFactory
from tests.factories.metering import MeterFactory

pytestmark = pytest.mark.django_db


def test_a_published_plan_keeps_its_currency_and_interval_but_may_be_renamed():
    plan = PlanFactory(key="pro", currency="USD", interval=Plan.Interval.MONTH)
    PlanVersionFactory(plan=plan, number=1, published=True)
    with pytest.raises(CatalogInvalid) as caught, transaction.atomic():  # a savepoint: the service's is not
        services.plan_update(plan=plan, data={"currency": "EUR", "interval": Plan.Interval.YEAR})
    assert set(caught.value.errors) == {"currency", "interval"}
    assert "published versions (v1)" in caught.value.errors["currency"][0]
    plan.refresh_from_db()
    assert (plan.currency, plan.interval) == ("USD", Plan.Interval.MONTH)
    # The same values again, or a new name: accepted.
    services.plan_update(plan=plan, data={"currency": "USD", "name": "Pro (2027)"})
    plan.refresh_from_db()
    assert plan.name == "Pro (2027)"


def test_a_plan_with_drafts_only_may_still_change_currency():
    plan = PlanFactory(key="draft-only", currency="USD")
    PlanVersionFactory(plan=plan, number=1)
    services.plan_update(plan=plan, data={"currency": "EUR"})
    plan.refresh_from_db()
    assert plan.currency == "EUR"


def test_an_entitled_feature_keeps_its_type_and_meter():
    tokens, other = MeterFactory(key="tokens"), MeterFactory(key="other")
    feature = FeatureFactory(key="api-tokens", type=Feature.Type.METERED, meter=tokens)
    EntitlementFactory(plan_version=PlanVersionFactory(number=1, published=True), feature=feature)
    with pytest.raises(CatalogInvalid) as caught, transaction.atomic():
        services.feature_update(feature=feature, data={"meter": other})
    assert list(caught.value.errors) == ["meter"]
    feature.refresh_from_db()
    assert feature.meter_id == tokens.pk
    services.feature_update(feature=feature, data={"name": "API tokens"})  # a new name is fine


def test_the_admin_form_names_the_fixed_field(admin_client):
    plan = PlanFactory(key="team", name="Team", currency="USD", interval=Plan.Interval.MONTH)
    PlanVersionFactory(plan=plan, number=1, published=True)
    url = reverse("admin:catalog_plan_change", args=[plan.pk])
    data = {
        "key": "team",
        "name": "Team",
        "description": "",
        "currency": "EUR",
        "interval": "month",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
    }
    page = admin_client.post(url, data)
    assert page.status_code == 200  # the form again, with the error next to the currency
    assert "cannot change: it has published versions (v1)" in page.content.decode()
    plan.refresh_from_db()
    assert plan.currency == "USD"
