"""Catalog as code: ``catalog_export`` then ``catalog_apply`` of the same file changes nothing; a new plan in the
file is created (a draft version) once; a changed published version becomes a new version, never an edit; bad
keys are named by their path in the file."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from backoffice.demo_catalog import catalog_load
from catalog.models import Feature, Plan, PlanVersion, Price
from metering.models import Meter

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 1, 1, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "catalog-example.yaml"


@pytest.fixture
def demo(db):
    catalog_load(effective_from=datetime(2025, 10, 1, tzinfo=UTC), now=NOW)


def _export(tmp_path) -> Path:
    path = tmp_path / "catalog.yaml"
    call_command("catalog_export", "--output", str(path), stderr=StringIO())
    return path


def _apply(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("catalog_apply", str(path), *args, stdout=out)
    return out.getvalue()


def _counts() -> tuple[int, int, int, int, int]:
    return (
        Meter.objects.count(),
        Feature.objects.count(),
        Plan.objects.count(),
        PlanVersion.objects.count(),
        Price.objects.count(),
    )


def test_export_then_apply_changes_nothing(demo, tmp_path):
    path = _export(tmp_path)
    before = _counts()
    output = _apply(path)
    assert "No changes." in output
    assert _counts() == before
    # The file holds every meter, feature and plan of the demo, each version with its contents.
    data = yaml.safe_load(path.read_text())
    assert len(data["meters"]) == before[0] and len(data["features"]) == before[1] and len(data["plans"]) == before[2]
    assert sum(len(p["versions"]) for p in data["plans"]) == before[3]


def test_one_more_plan_is_created_once_as_a_draft(demo, tmp_path):
    path = _export(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["plans"].append(
        {
            "key": "team",
            "name": "Team",
            "currency": "USD",
            "interval": "month",
            "versions": [
                {
                    "number": 1,
                    "status": "published",
                    "prices": [
                        {"name": "Seats", "model": "flat_fee", "amount": "49.00"},
                        {
                            "name": "Characters",
                            "model": "tiered",
                            "meter": "voice-characters",
                            "tier_mode": "graduated",
                            "tiers": [
                                {"up_to": 10000, "unit_amount": "0"},
                                {"up_to": None, "unit_amount": "0.0003"},
                            ],
                        },
                    ],
                }
            ],
        }
    )
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    before = _counts()

    dry = _apply(path, "--dry-run")
    assert "+ plan team: added" in dry and "+ plan team v1 (draft): added" in dry and "Dry run" in dry
    assert _counts() == before  # a dry run saves nothing

    output = _apply(path)
    assert "+ plan team v1 (draft): added" in output
    version = PlanVersion.objects.get(plan__key="team")
    # Created as a draft (no --publish), whatever status the file says; its tiers as written.
    assert (version.number, version.status) == (1, PlanVersion.Status.DRAFT)
    tiered = version.prices.get(name="Characters")
    assert [(t.up_to, t.unit_amount) for t in tiered.tiers.all()] == [
        (Decimal(10000), Decimal(0)),
        (None, Decimal("0.0003")),
    ]
    # (meters, features, plans, versions, prices): one plan, one version, two prices more.
    assert _counts() == (before[0], before[1], before[2] + 1, before[3] + 1, before[4] + 2)

    assert "No changes." in _apply(path)
    assert _counts() == (before[0], before[1], before[2] + 1, before[3] + 1, before[4] + 2)


def test_a_changed_published_version_becomes_a_new_version(demo, tmp_path):
    path = _export(tmp_path)
    data = yaml.safe_load(path.read_text())
    plan = next(p for p in data["plans"] if p["versions"][-1]["status"] == "published")
    last = plan["versions"][-1]
    stored = PlanVersion.objects.get(plan__key=plan["key"], number=last["number"])
    flat = next(i for i, p in enumerate(last["prices"]) if p["model"] == "flat_fee")
    old_amount = last["prices"][flat]["amount"]
    last["prices"][flat]["amount"] = "123.45"
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    output = _apply(path, "--publish")
    new_number = last["number"] + 1
    assert f"~ plan {plan['key']} v{last['number']}: changed" in output
    assert f"becomes new published v{new_number}" in output
    assert f"prices[{flat}].amount: {old_amount} -> 123.45" in output
    # The published version is untouched; the new one holds the change and is published (--publish), from now on.
    stored.refresh_from_db()
    assert stored.prices.get(model="flat_fee").amount == Decimal(old_amount)
    new = PlanVersion.objects.get(plan__key=plan["key"], number=new_number)
    assert new.status == PlanVersion.Status.PUBLISHED
    assert new.prices.get(model="flat_fee").amount == Decimal("123.45")
    assert new.effective_from > stored.effective_from

    again = _apply(path)
    assert "No changes." in again
    assert not PlanVersion.objects.filter(plan__key=plan["key"], number=new_number + 1).exists()


def test_errors_name_the_path_in_the_file(demo, tmp_path):
    path = _export(tmp_path)
    data = yaml.safe_load(path.read_text())
    plan = data["plans"][2]
    plan["versions"].append(
        {
            "prices": [
                {
                    "name": "Bad",
                    "model": "tiered",
                    "meter": "voice-characters",
                    "tier_mode": "graduated",
                    "tiers": [{"up_to": 10, "unit_amount": "1"}],
                }
            ]
        }
    )
    data["features"][0]["colour"] = "blue"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    before = _counts()
    with pytest.raises(CommandError) as error:
        _apply(path)
    message = str(error.value)
    index = len(plan["versions"]) - 1
    assert f"plans[2].versions[{index}].prices[0].tiers" in message
    assert "features[0].colour" in message
    assert _counts() == before


def test_committed_example_is_the_demo_export(demo, tmp_path):
    # docs/catalog-example.yaml is the export of the demo catalog (loaded as of 2026-01-01): applying it to the
    # demo changes nothing.
    assert "No changes." in _apply(EXAMPLE)


def test_an_incomplete_draft_exports_and_compares_equal(demo, tmp_path):
    # A draft whose tiered price has no tiers yet (the admin allows it until publishing): its export applies as
    # "no changes"; a version made from it would be refused with the path of the missing tiers.
    from tests.factories.catalog import PlanVersionFactory, PriceFactory

    plan = Plan.objects.get(key="api-pro")
    draft = PlanVersionFactory(plan=plan, number=plan.versions.count() + 1)
    PriceFactory(
        plan_version=draft,
        name="Calls",
        model=Price.Model.TIERED,
        tier_mode=Price.TierMode.GRADUATED,
        timing=Price.Timing.IN_ARREARS,
        amount=None,
        meter=Meter.objects.get(key="api-calls"),
    )
    path = _export(tmp_path)
    assert "No changes." in _apply(path)

    data = yaml.safe_load(path.read_text())
    index = next(i for i, p in enumerate(data["plans"]) if p["key"] == "api-pro")
    last = len(data["plans"][index]["versions"]) - 1
    data["plans"][index]["versions"][last]["prices"][0]["name"] = "Calls (renamed)"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(CommandError) as error:
        _apply(path)
    assert f"plans[{index}].versions[{last}].prices[0].tiers" in str(error.value)


def test_version_terms_travel_in_the_file(demo, tmp_path):
    """Trial days, a minimum commitment and progressive thresholds are contents of a version: exported, applied
    to no change, and a changed commitment becomes a new draft version (the published one is not edited)."""
    plan = Plan.objects.filter(versions__prices__meter__isnull=False).distinct().order_by("key").first()
    version = plan.versions.filter(status=PlanVersion.Status.PUBLISHED).order_by("-number").first()
    PlanVersion.objects.filter(pk=version.pk).update(
        trial_days=14,
        minimum_commitment=Decimal("1000.00"),
        progressive_thresholds=[{"amount": "200.00", "recurring": False}, {"amount": "500.00", "recurring": True}],
    )
    path = _export(tmp_path)
    data = yaml.safe_load(path.read_text())
    row = next(v for p in data["plans"] if p["key"] == plan.key for v in p["versions"] if v["number"] == version.number)
    assert row["trial_days"] == 14
    assert row["minimum_commitment"] == "1000"
    assert row["progressive_thresholds"] == [
        {"amount": "200.00", "recurring": False},
        {"amount": "500.00", "recurring": True},
    ]
    before = _counts()
    assert "No changes." in _apply(path)
    assert _counts() == before

    row["minimum_commitment"] = "1500.00"
    path.write_text(yaml.safe_dump(data))
    _apply(path)
    newest = plan.versions.order_by("-number").first()
    assert newest.number == plan.versions.count() and newest.status == PlanVersion.Status.DRAFT
    assert newest.minimum_commitment == Decimal("1500.00") and newest.trial_days == 14
    version.refresh_from_db()
    assert version.minimum_commitment == Decimal("1000.00")  # the published version is untouched

    row["progressive_thresholds"] = [{"amount": "0", "recurring": False}]
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CommandError) as info:
        _apply(path)
    assert "progressive_thresholds" in str(info.value)
