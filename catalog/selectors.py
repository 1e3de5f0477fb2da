"""Catalog reads."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Prefetch, QuerySet

from core.errors import NotFound

from .models import Entitlement, Feature, Plan, PlanVersion, Price


def plan_version_in_effect(*, plan: Plan, at: datetime) -> PlanVersion | None:
    """The plan's published version in effect at ``at``: the latest ``effective_from <= at`` (then highest number)."""
    return (
        PlanVersion.objects.filter(plan=plan, status=PlanVersion.Status.PUBLISHED, effective_from__lte=at)
        .order_by("-effective_from", "-number")
        .first()
    )


def feature_list() -> QuerySet[Feature]:
    return Feature.objects.select_related("meter").order_by("key")


def feature_get(*, key: str) -> Feature:
    """The feature with ``key``; :class:`NotFound` (404) otherwise."""
    feature = feature_list().filter(key=key).first()
    if feature is None:
        raise NotFound(f"No feature '{key}'.")
    return feature


def plan_list() -> QuerySet[Plan]:
    return Plan.objects.prefetch_related(
        Prefetch("versions", queryset=PlanVersion.objects.order_by("number"))
    ).order_by("key")


def plan_get(*, key: str) -> Plan:
    """The plan with ``key`` (versions prefetched in number order); :class:`NotFound` (404) otherwise."""
    plan = plan_list().filter(key=key).first()
    if plan is None:
        raise NotFound(f"No plan '{key}'.")
    return plan


def plan_version_list(*, plan: Plan) -> QuerySet[PlanVersion]:
    """The plan's versions in number order, each with prices (tiers, meters), entitlements (features) and
    grants prefetched: a fixed number of queries however many versions there are."""
    return (
        PlanVersion.objects.filter(plan=plan)
        .select_related("plan")
        .prefetch_related(
            Prefetch("prices", queryset=Price.objects.select_related("meter").prefetch_related("tiers")),
            Prefetch("entitlements", queryset=Entitlement.objects.select_related("feature")),
            "credit_grants",
        )
        .order_by("number")
    )


def plan_version_get(*, plan: Plan, number: int) -> PlanVersion:
    """One version of ``plan`` with prices (tiers, meters), entitlements (features) and grants prefetched."""
    version = plan_version_list(plan=plan).filter(number=number).first()
    if version is None:
        raise NotFound(f"Plan '{plan.key}' has no version {number}.")
    return version
