"""Migration: move grandfathered subscriptions (pinned to older versions) to a published version of their plan.

``plan_version_migrate`` pins the plan's active subscriptions pinned to ``from_versions`` (every other version
when empty) to ``version``, from the period after their current one. Rules (API.md "Pricing operations"; where
it is silent, chosen here and written in docs/pricing-operations.md):

* Only a published version is a target (a draft: ``400 version``); ``from_versions`` are version numbers of
  the same plan (another number: ``400 from_versions``); subscriptions already pinned to the target are left
  as they are.
* The current period keeps its version: ``Subscription.plan_version`` (the version billing the current period)
  is not touched, so the period's in-arrears lines at its end are priced as before; the boundary prices the next
  period with the pinned version. Nothing billed is touched.
* A subscription set to end at its period's end has no next period: it is left out.
* Subscriptions not pinned follow the plan's version in effect already and are left out.
* Each moved subscription gets one ``SubscriptionMigration`` audit row (and a history record of its row).
* ``dry_run`` computes the same list and writes nothing.
* Locks: the moved subscription rows, in id order (a boundary locks its customer, then the subscription, so
  the two wait for each other and never deadlock); the state is re-read after locking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from catalog.models import PlanVersion
from core.errors import ValidationFailed
from customers.models import Subscription

from ..models import SubscriptionMigration


@dataclass(frozen=True, slots=True)
class MigrationResult:
    version: PlanVersion
    dry_run: bool
    subscriptions: tuple[Subscription, ...]

    @property
    def count(self) -> int:
        return len(self.subscriptions)

    def as_dict(self) -> dict:
        return {"count": self.count, "subscriptions": [str(s.pk) for s in self.subscriptions]}


def _source_versions(version: PlanVersion, from_versions: Sequence[int]) -> list[PlanVersion]:
    if version.status != PlanVersion.Status.PUBLISHED:
        raise ValidationFailed(
            f"Version {version.number} is a draft: publish it before moving subscriptions to it.", field="version"
        )
    others = {v.number: v for v in PlanVersion.objects.filter(plan_id=version.plan_id).exclude(pk=version.pk)}
    if not from_versions:
        return list(others.values())
    unknown = [n for n in from_versions if n not in others and n != version.number]
    if unknown:
        names = ", ".join(str(n) for n in unknown)
        raise ValidationFailed(f"Not a version of plan '{version.plan.key}': {names}.", field="from_versions")
    return [others[n] for n in from_versions if n in others]


def plan_version_migration_candidates(*, version: PlanVersion, from_versions: Sequence[int] = ()) -> list[Subscription]:
    """The subscriptions a migration to ``version`` would move, oldest first (reads only)."""
    sources = _source_versions(version, from_versions)
    return list(
        Subscription.objects.filter(
            plan_id=version.plan_id,
            status=Subscription.Status.ACTIVE,
            cancel_at_period_end=False,
            pinned_version__in=sources,
        )
        .select_related("customer", "pinned_version")
        .order_by("id")
    )


def version_pinned_before_migration(*, subscription: Subscription, period_start: datetime) -> PlanVersion | None:
    """The version a migrated subscription was pinned to for the period starting at ``period_start``, when a
    migration took effect after that start (the earliest such migration's ``from_version``); ``None`` otherwise.
    Only pinned subscriptions are ever migrated, so callers ask for those alone."""
    move = (
        SubscriptionMigration.objects.filter(subscription_id=subscription.pk, effective_at__gt=period_start)
        .select_related("from_version__plan")
        .order_by("effective_at", "id")
        .first()
    )
    return move.from_version if move is not None else None


@transaction.atomic(durable=True)
def plan_version_migrate(
    *, version: PlanVersion, from_versions: Sequence[int] = (), dry_run: bool = False, now: datetime, actor: str = ""
) -> MigrationResult:
    """Pin the matching subscriptions to ``version`` from their next period (see the module's rules)."""
    candidates = plan_version_migration_candidates(version=version, from_versions=from_versions)
    if dry_run:
        return MigrationResult(version=version, dry_run=True, subscriptions=tuple(candidates))
    sources = {s.pinned_version_id for s in candidates}
    locked = list(
        Subscription.objects.select_for_update(of=("self",))
        .filter(pk__in=[s.pk for s in candidates])
        .select_related("customer", "pinned_version")
        .order_by("id")
    )
    moved: list[Subscription] = []
    for subscription in locked:
        # Re-checked after locking: a boundary or a cancellation may have changed the row since it was read.
        if (
            subscription.status != Subscription.Status.ACTIVE
            or subscription.cancel_at_period_end
            or subscription.pinned_version_id not in sources
        ):
            continue
        previous = subscription.pinned_version
        subscription.pinned_version = version
        subscription.save(update_fields=["pinned_version"])
        SubscriptionMigration.objects.create(
            subscription=subscription,
            from_version=previous,
            to_version=version,
            effective_at=subscription.current_period_end,
            migrated_at=now,
            actor=actor[:150],
        )
        moved.append(subscription)
    return MigrationResult(version=version, dry_run=False, subscriptions=tuple(moved))
