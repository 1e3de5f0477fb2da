"""Catalog admin: lists, the publish confirmation and action, new drafts, published versions read-only."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from catalog.models import PlanVersion, Price, Tier
from tests.factories.catalog import (
    EntitlementFactory,
    FeatureFactory,
    PlanCreditGrantFactory,
    PlanFactory,
    PlanVersionFactory,
    PriceFactory,
    TierFactory,
)
from tests.factories.metering import MeterFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def draft():
    version = PlanVersionFactory(plan=PlanFactory(key="starter", name="Starter"), number=1)
    price = PriceFactory(plan_version=version, name="Tokens", model="tiered", tier_mode="graduated", amount=None,
                         timing="in_arrears", meter=MeterFactory(key="tokens"))
    TierFactory(price=price, position=0, up_to=Decimal("1000"), unit_amount=Decimal("1.00"))
    TierFactory(price=price, position=1, up_to=Decimal("5000"), unit_amount=Decimal("0.80"), flat_amount=Decimal("50"))
    TierFactory(price=price, position=2, up_to=None, unit_amount=Decimal("0.50"), flat_amount=Decimal("100"))
    EntitlementFactory(plan_version=version, feature=FeatureFactory(key="sso"))
    PlanCreditGrantFactory(plan_version=version)
    return version


@pytest.mark.parametrize("model", ["feature", "plan", "planversion", "price"])
def test_changelists_with_search_and_filters(admin_client, draft, model):
    url = reverse(f"admin:catalog_{model}_changelist")
    assert admin_client.get(url).status_code == 200
    assert admin_client.get(url, {"q": "starter"}).status_code == 200


def test_plan_list_shows_the_latest_published_version(admin_client, draft):
    """Regression: the plan list answered 500 once a plan had a published version (format_html escaped the
    date to text before applying the date format)."""
    PlanVersionFactory(plan=draft.plan, number=2, published=True, effective_from=datetime(2026, 3, 1, tzinfo=UTC))
    response = admin_client.get(reverse("admin:catalog_plan_changelist"))
    assert response.status_code == 200
    assert "v2</a> (from 1 Mar 2026, 00:00)" in response.content.decode()


def test_change_pages_render(admin_client, draft):
    price = draft.prices.get()
    for url in (
        reverse("admin:catalog_plan_change", args=[draft.plan.pk]),
        reverse("admin:catalog_planversion_change", args=[draft.pk]),
        reverse("admin:catalog_price_change", args=[price.pk]),
        reverse("admin:catalog_planversion_history", args=[draft.pk]),
    ):
        assert admin_client.get(url).status_code == 200, url
    page = admin_client.get(reverse("admin:catalog_planversion_change", args=[draft.pk])).content.decode()
    assert "1–1,000: $1.00/unit; 1,001–5,000: $0.80/unit + $50.00; 5,001 and up: $0.50/unit + $100.00" in page
    plan_page = admin_client.get(reverse("admin:catalog_plan_change", args=[draft.plan.pk])).content.decode()
    assert "Version history" in plan_page and "v1" in plan_page


def test_publish_shows_confirmation_then_publishes(admin_client, draft):
    url = reverse("admin:catalog_planversion_changelist")
    page = admin_client.post(url, {"action": "publish_versions", "_selected_action": [draft.pk]})
    assert page.status_code == 200
    text = page.content.decode()
    assert "Publishing is permanent" in text and "New — Tokens" in text and "1 Jan 2020, 00:00" in text
    draft.refresh_from_db()
    assert draft.status == PlanVersion.Status.DRAFT  # nothing happens before confirming
    admin_client.post(url, {"action": "publish_versions", "_selected_action": [draft.pk], "confirm": "yes"})
    draft.refresh_from_db()
    assert draft.status == PlanVersion.Status.PUBLISHED and draft.published_at is not None
    assert LogEntry.objects.filter(object_id=str(draft.pk), change_message__startswith="Published").exists()


def test_publish_refuses_incomplete_tiered_price(admin_client, draft):
    Tier.objects.filter(price__plan_version=draft, up_to=None).delete()  # last tier now bounded
    url = reverse("admin:catalog_planversion_changelist")
    admin_client.post(url, {"action": "publish_versions", "_selected_action": [draft.pk], "confirm": "yes"})
    draft.refresh_from_db()
    assert draft.status == PlanVersion.Status.DRAFT


def test_new_draft_from_version_copies_everything(admin_client, draft):
    url = reverse("admin:catalog_planversion_changelist")
    admin_client.post(url, {"action": "new_draft_from_versions", "_selected_action": [draft.pk]})
    copy = PlanVersion.objects.get(plan=draft.plan, number=2)
    assert copy.status == PlanVersion.Status.DRAFT
    assert [t.up_to for t in Tier.objects.filter(price__plan_version=copy).order_by("position")] == [
        Decimal("1000"), Decimal("5000"), None]
    assert copy.entitlements.count() == 1 and copy.credit_grants.count() == 1


def _version_post_data(version, **overrides):
    price = version.prices.get()
    data = {
        "effective_from_0": "2020-01-01", "effective_from_1": "00:00:00", "notes": "changed",
        "prices-TOTAL_FORMS": "1", "prices-INITIAL_FORMS": "1", "prices-MIN_NUM_FORMS": "0", "prices-MAX_NUM_FORMS": "1000",
        "prices-0-id": str(price.pk), "prices-0-plan_version": str(version.pk), "prices-0-position": "0",
        "prices-0-name": "Renamed", "prices-0-model": "tiered", "prices-0-meter": str(price.meter_id),
        "prices-0-timing": "in_arrears", "prices-0-tier_mode": "graduated",
        "entitlements-TOTAL_FORMS": "0", "entitlements-INITIAL_FORMS": "0",
        "entitlements-MIN_NUM_FORMS": "0", "entitlements-MAX_NUM_FORMS": "1000",
        "credit_grants-TOTAL_FORMS": "0", "credit_grants-INITIAL_FORMS": "0",
        "credit_grants-MIN_NUM_FORMS": "0", "credit_grants-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


def test_draft_is_editable_in_the_admin(admin_client, draft):
    url = reverse("admin:catalog_planversion_change", args=[draft.pk])
    response = admin_client.post(url, _version_post_data(draft))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Price.objects.get(plan_version=draft).name == "Renamed"


def test_published_version_is_read_only_in_the_admin(admin_client, draft):
    draft.status = PlanVersion.Status.PUBLISHED
    draft.save()
    url = reverse("admin:catalog_planversion_change", args=[draft.pk])
    page = admin_client.get(url)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    response = admin_client.post(url, _version_post_data(draft))
    assert response.status_code == 403
    assert Price.objects.get(plan_version=draft).name == "Tokens"
    price = draft.prices.get()
    tier = price.tiers.get(position=0)
    tiers_post = admin_client.post(reverse("admin:catalog_price_change", args=[price.pk]), {
        "tiers-TOTAL_FORMS": "1", "tiers-INITIAL_FORMS": "1", "tiers-MIN_NUM_FORMS": "0", "tiers-MAX_NUM_FORMS": "1000",
        "tiers-0-id": str(tier.pk), "tiers-0-price": str(price.pk), "tiers-0-position": "0",
        "tiers-0-up_to": "", "tiers-0-unit_amount": "9", "tiers-0-flat_amount": "0",
    })
    assert tiers_post.status_code == 403
    tier.refresh_from_db()
    assert tier.unit_amount == Decimal("1.00")
    assert admin_client.post(reverse("admin:catalog_planversion_delete", args=[draft.pk]), {"post": "yes"}).status_code == 403
    assert PlanVersion.objects.filter(pk=draft.pk).exists()


def test_admin_price_form_names_bad_fields(admin_client, draft):
    url = reverse("admin:catalog_planversion_change", args=[draft.pk])
    response = admin_client.post(url, _version_post_data(draft, **{"prices-0-model": "flat_fee", "prices-0-amount": ""}))
    assert response.status_code == 200  # form redisplayed with errors
    assert "A flat fee has no meter." in response.content.decode()


def test_tier_rows_must_rise(admin_client, draft):
    price = draft.prices.get()
    tiers = list(price.tiers.order_by("position"))
    data = {"tiers-TOTAL_FORMS": "3", "tiers-INITIAL_FORMS": "3", "tiers-MIN_NUM_FORMS": "0", "tiers-MAX_NUM_FORMS": "1000"}
    for i, (tier, up_to) in enumerate(zip(tiers, ["1000", "500", ""], strict=True)):
        data.update({f"tiers-{i}-id": str(tier.pk), f"tiers-{i}-price": str(price.pk), f"tiers-{i}-position": str(i),
                     f"tiers-{i}-up_to": up_to, f"tiers-{i}-unit_amount": "1", f"tiers-{i}-flat_amount": "0"})
    response = admin_client.post(reverse("admin:catalog_price_change", args=[price.pk]), data)
    assert response.status_code == 200 and "must be greater than" in response.content.decode()


def test_add_version_in_admin_numbers_it(admin_client, draft):
    response = admin_client.post(reverse("admin:catalog_planversion_add"), {
        "plan": str(draft.plan.pk), "effective_from_0": "2026-02-01", "effective_from_1": "00:00:00", "notes": "",
        "prices-TOTAL_FORMS": "0", "prices-INITIAL_FORMS": "0", "prices-MIN_NUM_FORMS": "0", "prices-MAX_NUM_FORMS": "1000",
        "entitlements-TOTAL_FORMS": "0", "entitlements-INITIAL_FORMS": "0",
        "entitlements-MIN_NUM_FORMS": "0", "entitlements-MAX_NUM_FORMS": "1000",
        "credit_grants-TOTAL_FORMS": "0", "credit_grants-INITIAL_FORMS": "0",
        "credit_grants-MIN_NUM_FORMS": "0", "credit_grants-MAX_NUM_FORMS": "1000",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    assert PlanVersion.objects.filter(plan=draft.plan, number=2, status="draft").exists()


def test_plan_admin_refuses_unconfigured_currency(admin_client):
    response = admin_client.post(reverse("admin:catalog_plan_add"), {
        "key": "k", "name": "K", "currency": "KWD", "interval": "month",
        "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0", "versions-MIN_NUM_FORMS": "0",
        "versions-MAX_NUM_FORMS": "1000",
    })
    assert response.status_code == 200 and "not one of this installation" in response.content.decode()


def test_admin_changes_are_in_history_with_the_user(admin_client, admin_user, draft):
    url = reverse("admin:catalog_planversion_change", args=[draft.pk])
    admin_client.post(url, _version_post_data(draft))
    latest = Price.history.filter(id=draft.prices.get().pk).latest("history_date")
    assert (latest.name, latest.history_user) == ("Renamed", admin_user)
    page = admin_client.get(reverse("admin:catalog_price_history", args=[latest.id]))
    assert page.status_code == 200


def _bulk_prices(version, n: int) -> None:
    Price.objects.bulk_create(
        [Price(plan_version=version, name=f"Price {i}", model="flat_fee", timing="in_advance", amount=Decimal("1"),
               position=i) for i in range(n)]
    )


def _changelist_sql(admin_client, params) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(reverse("admin:catalog_planversion_changelist"), params)
    assert response.status_code == 200
    return [q["sql"] for q in ctx.captured_queries]


def test_version_search_reads_no_price_join_whatever_a_version_holds(admin_client):
    """Regression: a version with 20,000 prices made ``?q=a`` run for minutes: the search joined prices (price
    names were a search field) on top of the price-count join, and the count and date drill-down repeated it."""
    searches = [{"q": "a"}, {"q": "a", "effective_from__year": "2020"}]
    small = PlanVersionFactory(plan=PlanFactory(key="alpha", name="Alpha"), number=1)
    _bulk_prices(small, 3)
    few = [_changelist_sql(admin_client, params) for params in searches]
    big = PlanVersionFactory(plan=PlanFactory(key="aleph", name="Aleph"), number=1)
    _bulk_prices(big, 5000)
    many = [_changelist_sql(admin_client, params) for params in searches]
    # the same number of statements whatever the number of prices, and none of them joins prices
    assert [len(sqls) for sqls in many] == [len(sqls) for sqls in few]
    for sql in many[0] + many[1]:
        assert 'JOIN "catalog_price"' not in sql, sql
    # price names are still searchable, through EXISTS
    response = admin_client.get(reverse("admin:catalog_planversion_changelist"), {"q": "Price 4999"})
    assert [v.pk for v in response.context["cl"].result_list] == [big.pk]
    assert response.context["cl"].result_list[0].n_prices == 5000


def test_plan_page_counts_version_rows_without_a_join(admin_client, draft):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _bulk_prices(draft, 50)
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(reverse("admin:catalog_plan_change", args=[draft.plan.pk]))
    assert response.status_code == 200
    # 1 tiered price from the fixture + 50 = 51 prices, 1 entitlement, 1 grant: counted, not multiplied
    assert "51 price(s), 1 entitlement(s), 1 credit grant(s)" in response.content.decode()
    assert not [q["sql"] for q in ctx.captured_queries if 'JOIN "catalog_price"' in q["sql"]]


def test_version_page_refuses_more_prices_than_the_api_accepts(admin_user, rf, monkeypatch):
    """The price inline's max_num (the API's bound) is enforced on POST (validate_max), not only by the page."""
    from django.contrib import admin as django_admin

    from catalog.admin import PriceInline
    from catalog.services import MAX_PRICES

    assert PriceInline.max_num == MAX_PRICES == 200
    monkeypatch.setattr(PriceInline, "max_num", 1)  # the same rule with a bound small enough to post
    version = PlanVersionFactory()
    request = rf.get("/")
    request.user = admin_user
    formset_class = PriceInline(PlanVersion, django_admin.site).get_formset(request, version)
    data = {"prices-TOTAL_FORMS": "2", "prices-INITIAL_FORMS": "0", "prices-MIN_NUM_FORMS": "0",
            "prices-MAX_NUM_FORMS": "1000"}
    for i in range(2):
        data.update({f"prices-{i}-position": str(i), f"prices-{i}-name": f"Fee {i}", f"prices-{i}-model": "flat_fee",
                     f"prices-{i}-timing": "in_advance", f"prices-{i}-amount": "5"})
    formset = formset_class(data, instance=version, prefix="prices")
    assert not formset.is_valid()
    assert "at most 1" in " ".join(formset.non_form_errors())


def test_add_version_in_admin_refuses_an_effective_from_out_of_range(admin_client, draft):
    response = admin_client.post(reverse("admin:catalog_planversion_add"), {
        "plan": str(draft.plan.pk), "effective_from_0": "9999-12-31", "effective_from_1": "00:00:00", "notes": "",
        "prices-TOTAL_FORMS": "0", "prices-INITIAL_FORMS": "0", "prices-MIN_NUM_FORMS": "0", "prices-MAX_NUM_FORMS": "1000",
        "entitlements-TOTAL_FORMS": "0", "entitlements-INITIAL_FORMS": "0",
        "entitlements-MIN_NUM_FORMS": "0", "entitlements-MAX_NUM_FORMS": "1000",
        "credit_grants-TOTAL_FORMS": "0", "credit_grants-INITIAL_FORMS": "0",
        "credit_grants-MIN_NUM_FORMS": "0", "credit_grants-MAX_NUM_FORMS": "1000",
    })
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["effective_from"]
    assert not PlanVersion.objects.filter(plan=draft.plan, number=2).exists()


def test_a_published_versions_tiers_link_says_view_not_edit(admin_client, draft):
    """Regression: "(edit tiers)" on a published version led to a read-only page."""
    url = reverse("admin:catalog_planversion_change", args=[draft.pk])
    assert "(edit tiers)" in admin_client.get(url).content.decode()
    draft.status = PlanVersion.Status.PUBLISHED
    draft.save()
    html = admin_client.get(url).content.decode()
    assert "(view tiers)" in html and "(edit tiers)" not in html


def test_currency_filters_list_only_currencies_in_use(admin_client, draft):
    """Regression: the currency filters listed every currency the code knows (ten) when one was used."""
    html = admin_client.get(reverse("admin:catalog_plan_changelist")).content.decode()
    assert "?currency__exact=USD" in html and "currency__exact=JPY" not in html and "currency__exact=EUR" not in html
    filtered = admin_client.get(reverse("admin:catalog_plan_changelist"), {"currency__exact": "EUR"})
    assert filtered.status_code == 200 and list(filtered.context["cl"].result_list) == []
    html = admin_client.get(reverse("admin:catalog_planversion_changelist")).content.decode()
    assert "plan__currency__exact=USD" in html and "plan__currency__exact=JPY" not in html
