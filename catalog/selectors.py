"""Catalog reads."""

from __future__ import annotations

from datetime import datetime

from .models import Plan, PlanVersion


def plan_version_in_effect(*, plan: Plan, at: datetime) -> PlanVersion | None:
    """The plan's published version in effect at ``at``: the latest ``effective_from <= at`` (then highest number)."""
    return (
        PlanVersion.objects.filter(plan=plan, status=PlanVersion.Status.PUBLISHED, effective_from__lte=at)
        .order_by("-effective_from", "-number")
        .first()
    )
