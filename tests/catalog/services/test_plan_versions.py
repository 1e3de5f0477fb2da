"""Catalog services: versions, publishing, drafts, the published-is-immutable guard, history, price quotes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection

from catalog.errors import CatalogInvalid, VersionPublished
from catalog.models import PlanVersion, Price
from catalog.quote import price_quote
from catalog.services import (
    plan_version_create,
    plan_version_draft_from,
    plan_version_publish,
    plan_version_update,
)
from tests.factories.catalog import (
    EntitlementFactory,
    FeatureFactory,
    PlanCreditGrantFactory,
    PlanFactory,
    PriceFactory,
    TierFactory,
)
from tests.factories.metering import MeterFactory

NOW = datetime(2026, 1, 15, tzinfo=UTC)
TIERS = [
    {"up_to": 1000, "unit_amount": "1.00"},
    {"up_to": 5000, "unit_amount": "0.80", "flat_amount": "50"},
    {"up_to": None, "unit_amount": "0.50", "flat_amount": "100"},
]


@pytest.fixture
def plan(db):
    MeterFactory(key="tokens")
    FeatureFactory(key="sso")
    return PlanFactory(key="starter")


def _version(plan, **extra):
    return plan_version_create(
        plan=plan,
        prices=[
            {"name": "Base", "model": "flat_fee", "amount": "49"},
            {"name": "Tokens", "model": "tiered", "meter": "tokens", "tier_mode": "graduated", "tiers": TIERS},
        ],
        entitlements=[{"feature": "sso"}],
        credit_grants=[{"name": "Monthly", "credits": "2000", "rollover_cap": "2000"}],
        now=NOW,
        **extra,
    )


def test_create_stores_everything_with_defaults(plan):
    version = _version(plan)
    assert (version.number, version.status, version.effective_from, version.published_at) == (1, "draft", NOW, None)
    base, tokens = version.prices.order_by("position")
    assert (base.timing, tokens.timing) == ("in_advance", "in_arrears")
    assert [t.flat_amount for t in tokens.tiers.order_by("position")] == [Decimal(0), Decimal(50), Decimal(100)]
    grant = version.credit_grants.get()
    assert (grant.priority, grant.cadence, grant.forfeit_on_end, grant.expire_after_periods) == (
        10,
        "per_period",
        True,
        None,
    )
    ent = version.entitlements.get()
    assert (ent.enabled, ent.soft, ent.reset, ent.limit) == (True, False, "billing_period", None)


def test_publish_twice_is_conflict(plan):
    version = _version(plan)
    published = plan_version_publish(version=version, now=NOW)
    assert published.status == "published" and published.published_at == NOW
    with pytest.raises(VersionPublished) as exc:
        plan_version_publish(version=version, now=NOW)
    assert exc.value.status == 409


def test_published_version_cannot_be_updated(plan):
    version = _version(plan, publish=True)
    with pytest.raises(VersionPublished):
        plan_version_update(version=version, prices=[{"name": "Base", "model": "flat_fee", "amount": "1"}])
    assert version.prices.get(name="Base").amount == Decimal("49")


def test_draft_from_copies_into_next_number(plan):
    source = _version(plan, publish=True)
    draft = plan_version_draft_from(version=source, now=NOW)
    assert (draft.number, draft.status) == (2, "draft")
    copied = draft.prices.get(name="Tokens")
    assert [(t.up_to, t.unit_amount, t.flat_amount) for t in copied.tiers.order_by("position")] == [
        (Decimal("1000"), Decimal("1.00"), Decimal("0")),
        (Decimal("5000"), Decimal("0.80"), Decimal("50")),
        (None, Decimal("0.50"), Decimal("100")),
    ]
    assert draft.entitlements.count() == 1 and draft.credit_grants.get().credits == Decimal("2000")
    # The source is untouched; the draft is editable.
    plan_version_update(version=draft, prices=[{"name": "Base", "model": "flat_fee", "amount": "59"}])
    assert source.prices.count() == 2 and draft.prices.get().amount == Decimal("59")


def test_publish_refuses_an_incomplete_draft(plan):
    version = plan_version_create(plan=plan, now=NOW)
    price = PriceFactory(
        plan_version=version, model="tiered", tier_mode="volume", amount=None, timing="in_arrears", meter=MeterFactory()
    )
    TierFactory(price=price, up_to=Decimal("10"))  # the last tier is bounded
    with pytest.raises(CatalogInvalid) as exc:
        plan_version_publish(version=version)
    assert "prices[0].tiers" in exc.value.errors


def test_publish_refuses_a_grant_expiring_after_more_than_1200_periods(plan):
    # A grant row entered in the admin is checked when the version is published, as the API checks it.
    from tests.factories.catalog import PlanCreditGrantFactory

    version = plan_version_create(plan=plan, now=NOW)
    PlanCreditGrantFactory(plan_version=version, expire_after_periods=1201)
    with pytest.raises(CatalogInvalid) as exc:
        plan_version_publish(version=version)
    assert exc.value.as_dict()["credit_grants[0].expire_after_periods"] == ["Must be at most 1200."]
    version.credit_grants.update(expire_after_periods=1200)
    assert plan_version_publish(version=version).status == PlanVersion.Status.PUBLISHED


@pytest.mark.parametrize(
    ("rows", "errors"),
    [
        pytest.param(
            {"entitlement": {"limit": Decimal("100"), "soft": True}},
            {
                "entitlements[0].limit": ["A limit applies to metered features only; 'chat' is boolean."],
                "entitlements[0].soft": ["A soft limit applies to metered features only; 'chat' is boolean."],
            },
            id="limit-and-soft-on-a-boolean-feature",
        ),
        pytest.param(
            {"grant": {"credits": Decimal("0"), "expire_after_periods": 0}},
            {
                "credit_grants[0].credits": ["Must be greater than 0."],
                "credit_grants[0].expire_after_periods": ["Must be at least 1."],
            },
            id="zero-credits-expiring-after-0-periods",
        ),
    ],
)
def test_publish_refuses_entitlements_and_grants_the_api_refuses(plan, rows, errors):
    """Regression: publishing checked prices only, so rows stored another way (the admin's old inline forms) were
    published and could never be fixed. Built here directly with the ORM."""
    version = plan_version_create(plan=plan, prices=[{"name": "Base", "model": "flat_fee", "amount": "49"}], now=NOW)
    if "entitlement" in rows:
        EntitlementFactory(plan_version=version, feature=FeatureFactory(key="chat"), **rows["entitlement"])
    if "grant" in rows:
        PlanCreditGrantFactory(plan_version=version, **rows["grant"])
    with pytest.raises(CatalogInvalid) as exc:
        plan_version_publish(version=version, now=NOW)
    assert exc.value.status == 400 and exc.value.errors == errors
    version.refresh_from_db()
    assert (version.status, version.published_at) == ("draft", None)


def test_validation_error_is_atomic(plan):
    with pytest.raises(CatalogInvalid) as exc:
        plan_version_create(plan=plan, prices=[{"name": "X", "model": "per_unit", "unit_amount": "1"}], now=NOW)
    assert exc.value.as_dict()["prices[0].meter"] == ["A per_unit price needs a meter."]
    assert not PlanVersion.objects.exists()


def test_history_rows_record_changes(plan):
    version = _version(plan)
    plan_version_publish(version=version, now=NOW)
    history = list(PlanVersion.history.filter(id=version.id).order_by("history_date"))
    assert [h.history_type for h in history] == ["+", "~"]
    assert [h.status for h in history] == ["draft", "published"]
    assert Price.history.filter(plan_version_id=version.id).count() == 2


# ------------------------------------------------------------------ price_quote


@pytest.fixture
def tiered_price(plan):
    def make(mode):
        version = _version(plan)
        price = version.prices.get(name="Tokens")
        price.tier_mode = mode
        price.save()
        return Price.objects.prefetch_related("tiers").get(pk=price.pk)

    return make


def test_quote_volume_and_graduated_worked_examples(tiered_price, django_assert_num_queries):
    volume = tiered_price("volume")
    with django_assert_num_queries(0):  # tiers were prefetched
        # 3,000 units fall in tier 2: 3,000 × 0.80 + 50 = 2,450.00
        assert price_quote(volume, Decimal(3000)).amount == Decimal("2450.00")
    graduated = tiered_price("graduated")
    with django_assert_num_queries(0):
        # 1,000 × 1.00 + (2,000 × 0.80 + 50) = 1,000 + 1,650 = 2,650.00
        assert price_quote(graduated, Decimal(3000)).amount == Decimal("2650.00")
        # 1,000 + (4,000 × 0.80 + 50) + (1,000 × 0.50 + 100) = 1,000 + 3,250 + 600 = 4,850.00
        result = price_quote(graduated, Decimal(6000))
    assert result.amount == Decimal("4850.00")
    assert [p.amount for p in result.breakdown] == [Decimal("1000.00"), Decimal("3250.00"), Decimal("600.00")]


def test_quote_flat_per_unit_package(db):
    # flat fee ignores quantity: 49.00
    assert price_quote(PriceFactory.build(amount=Decimal("49")), Decimal(7)).amount == Decimal("49")
    # per unit: 1,500,000 tokens × 0.000002 = 3.000000
    per_unit = PriceFactory.build(per_unit=True, unit_amount=Decimal("0.000002"), meter=None)
    assert price_quote(per_unit, Decimal(1_500_000)).amount == Decimal("3.000000")
    # package: ceil(2,001 / 1,000) = 3 packages × 5.00 = 15.00
    package = PriceFactory.build(
        model="package", amount=None, package_size=Decimal(1000), package_amount=Decimal("5.00")
    )
    assert price_quote(package, Decimal(2001)).amount == Decimal("15.00")


# ------------------------------------------------------------------ concurrency


@pytest.mark.django_db(transaction=True)
def test_racing_version_creates_get_distinct_numbers():
    plan = PlanFactory(key="race")
    numbers: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def create():
        try:
            barrier.wait()
            numbers.append(plan_version_create(plan=plan, now=NOW).number)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(numbers) == [1, 2]


@pytest.mark.django_db(transaction=True)
def test_racing_publishes_publish_once():
    plan = PlanFactory(key="race2")
    version = plan_version_create(plan=plan, now=NOW)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def publish():
        try:
            barrier.wait()
            plan_version_publish(version=version, now=NOW)
            outcomes.append("published")
        except VersionPublished:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=publish) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "published"]
