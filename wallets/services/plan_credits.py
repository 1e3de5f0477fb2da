"""Plan credits of subscriptions: grant per period, close a period (rollover up to the cap, expiry, forfeit).

Rollover rule chosen (DESIGN.md leaves the bookkeeping open): **lots are kept**. At a period's end the
carried part stays in its own lot, so it keeps that lot's original expiry and age, and only the excess gets
an ``expire`` ledger row. No ``rollover`` lots or rows are created; a plan lot stays ``active`` while it
carries credits. Lots are grouped by the catalog's plan credit grant, each group capped by its own
``rollover_cap`` (copied onto the lot when granted; the latest lot's cap governs the group).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.db.models import Q

from catalog.models import PlanCreditGrant
from core.money import format_decimal
from customers.models import Subscription
from customers.periods import Period
from customers.schedule import subscription_first_period, subscription_period_after
from wallets.credits import expired_lots, rollover_split

from ..models import CreditGrant, Wallet
from ._ledger import grant_expire_locked, grants_locked, lots_of, wallet_lock
from .grants import wallet_for_plan_credits, wallet_grant_create_locked


def credits_share(credits: Decimal, days: int, days_in_period: int) -> Decimal:
    """``credits x days / days_in_period``, half-up to 2 places (DESIGN.md: a plan change's share of a grant)."""
    return (Decimal(credits) * days / days_in_period).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _period_end_after(subscription: Subscription, period: Period, n: int) -> datetime:
    """The end of the period ``n - 1`` periods after ``period`` (n = 1: ``period.end``)."""
    current = period
    for _ in range(n - 1):
        current = subscription_period_after(subscription, current.end)
    return current.end


def _plan_grant_key(subscription: Subscription, plan_grant: PlanCreditGrant, period: Period) -> str:
    return f"plan:{subscription.pk}:{plan_grant.pk}:{period.start.isoformat()}"


@transaction.atomic(savepoint=False)
def plan_credit_grant_create(
    *,
    subscription: Subscription,
    plan_grant: PlanCreditGrant,
    period: Period,
    now: datetime,
    share: tuple[int, int] | None = None,
) -> tuple[CreditGrant | None, bool]:
    """Grant one plan credit grant for one period of a subscription. Idempotent per (subscription, grant, period).

    ``cadence=once`` grants only for the subscription's first period; ``expire_after_periods = N`` makes the
    lot expire at the end of the N-th period counted from this one. Call inside a transaction.
    ``share = (days, days_in_period)``: a plan change's part period grants ``credits x days / days_in_period``
    (half-up, 2 places; DESIGN.md "plan credits follow the money"); one-time grants are not given on a change.
    """
    if share is not None and plan_grant.cadence == PlanCreditGrant.Cadence.ONCE:
        return None, False
    if plan_grant.cadence == PlanCreditGrant.Cadence.ONCE:
        first = subscription_first_period(
            customer=subscription.customer,
            plan=subscription.plan,
            billing=subscription.billing,
            start_at=subscription.start_at,
        )
        if period.start != first.start:
            return None, False
    credits = Decimal(plan_grant.credits)
    if share is not None and share[0] != share[1]:
        credits = credits_share(credits, share[0], share[1])
    if credits <= 0:
        return None, False
    wallet = wallet_for_plan_credits(customer=subscription.customer, currency=subscription.plan.currency)
    expires_at = None
    if plan_grant.expire_after_periods:
        expires_at = _period_end_after(subscription, period, plan_grant.expire_after_periods)
    return wallet_grant_create_locked(
        wallet=wallet,
        credits=credits,
        kind=CreditGrant.Kind.PLAN,
        now=now,
        priority=plan_grant.priority,
        effective_at=period.start,
        expires_at=expires_at,
        idempotency_key=_plan_grant_key(subscription, plan_grant, period),
        name=plan_grant.name,
        subscription=subscription,
        plan_credit_grant=plan_grant,
        period_start=period.start,
        period_end=period.end,
        rollover_cap=plan_grant.rollover_cap,
        forfeit_on_end=plan_grant.forfeit_on_end,
        reference=f"subscription:{subscription.pk}",
        check_expiry=False,
    )


@transaction.atomic(savepoint=False)
def plan_credits_grant_period(
    *,
    subscription: Subscription,
    period: Period,
    now: datetime,
    plan_grants: Sequence[PlanCreditGrant] | None = None,
    share: tuple[int, int] | None = None,
) -> list[CreditGrant]:
    """Grant every credit grant of ``subscription.plan_version`` for ``period``. Idempotent. Call inside a transaction.

    ``plan_grants``: that version's grants in ``(priority, id)`` order when the caller read them already
    (a billing run reads them per batch); else they are read here.
    """
    if plan_grants is None:
        plan_grants = list(subscription.plan_version.credit_grants.order_by("priority", "id"))
    granted = []
    for plan_grant in plan_grants:
        grant, _ = plan_credit_grant_create(
            subscription=subscription, plan_grant=plan_grant, period=period, now=now, share=share
        )
        if grant is not None:
            granted.append(grant)
    return granted


@transaction.atomic(savepoint=False)
def plan_credits_close(*, subscription: Subscription, period: Period, ending: bool, now: datetime) -> Decimal:
    """At ``period.end``: age expiry, then rollover up to each cap (the rest expires); forfeit when ``ending``.

    The subscription's unused plan credits granted for periods up to this one (this period's lots and earlier
    carried ones together) are considered. Credits whose lot expires at or before the period's end expire;
    ``min(unused, cap)`` of the rest carries (the longest-lived credits, wallets.credits.rollover_split);
    when ``ending``, lots marked ``forfeit_on_end`` expire entirely. Credits held for a draft invoice (the
    period's own, held at this boundary just before) are left out of all of it: they neither expire nor roll
    over while held, and pay that invoice when it is finalized. Idempotent: a second call finds
    nothing above the caps. Call inside a transaction, after the period's invoice has used its credits.
    Returns the credits expired.
    """
    wallet_ids = (
        CreditGrant.objects.filter(subscription=subscription, kind=CreditGrant.Kind.PLAN)
        .values_list("wallet_id", flat=True)
        .distinct()
    )
    expired = Decimal(0)
    end_key = period.end.isoformat()
    for wallet in Wallet.objects.filter(pk__in=list(wallet_ids)).order_by("id"):
        wallet = wallet_lock(wallet=wallet)
        grants = grants_locked(
            wallet=wallet,
            filters=Q(
                subscription=subscription,
                kind=CreditGrant.Kind.PLAN,
                status=CreditGrant.Status.ACTIVE,
                period_start__lt=period.end,
            ),
        )
        by_id = {g.pk: g for g in grants}
        for take in expired_lots(lots_of(grants), period.end):
            grant = by_id[take.lot_id]
            expired += grant_expire_locked(
                wallet=wallet,
                grant=grant,
                credits=take.credits,
                key=f"age:{grant.pk}:{end_key}",
                reference=f"subscription:{subscription.pk}",
                description="Expired by age at the period's end",
            )
        if ending:
            for grant in [g for g in grants if g.forfeit_on_end and g.free > 0]:
                expired += grant_expire_locked(
                    wallet=wallet,
                    grant=grant,
                    credits=grant.free,
                    key=f"forfeit:{grant.pk}:{end_key}",
                    reference=f"subscription:{subscription.pk}",
                    description="Forfeited: the subscription ended",
                )
        groups: dict[int | None, list[CreditGrant]] = defaultdict(list)
        for grant in grants:  # lots with only held credits left still name their group's cap
            groups[grant.plan_credit_grant_id].append(grant)
        for group in groups.values():
            latest = max(group, key=lambda g: (g.period_start, g.pk))
            split = rollover_split(lots_of(group), latest.rollover_cap)
            for take in split.expire:
                grant = by_id[take.lot_id]
                expired += grant_expire_locked(
                    wallet=wallet,
                    grant=grant,
                    credits=take.credits,
                    key=f"rollover:{grant.pk}:{end_key}",
                    reference=f"subscription:{subscription.pk}",
                    description=f"Above the rollover cap of {format_decimal(latest.rollover_cap)} at the period's end",
                )
    return expired


@transaction.atomic(savepoint=False)
def plan_credits_change(
    *,
    previous: Subscription,
    successor: Subscription,
    period: Period,
    at: datetime,
    used_days: int,
    days_in_period: int,
    now: datetime,
) -> Decimal:
    """Plan credits follow the money on a plan change at ``at`` inside ``period`` (DESIGN.md). Returns the
    credits expired. Call inside a transaction holding the customer lock.

    1. The old plan's lots granted for ``period`` are cut to their used share: share = ``credits x used_days /
       days_in_period`` (half-up, 2 places); of each, what is free above ``share - spent`` (spent = credits -
       free, held credits count as spent) expires at ``at``.
    2. The old plan's unused credits then close as at a period end (``plan_credits_close`` over ``[period.start,
       at)``: age expiry, rollover cap); a change is not an end, so nothing is forfeited.
    3. Rule chosen (the design is silent): what carries **moves to the successor** (the lots' subscription
       changes; each lot keeps its expiry, cap group and age), so the new subscription's period ends cap it and
       its end forfeits it, as for any carried credits. The ledger is untouched by the move.
    """
    expired = Decimal(0)
    key = at.isoformat()
    wallet_ids = (
        CreditGrant.objects.filter(subscription=previous, kind=CreditGrant.Kind.PLAN, period_start=period.start)
        .values_list("wallet_id", flat=True)
        .distinct()
    )
    for wallet in Wallet.objects.filter(pk__in=list(wallet_ids)).order_by("id"):
        wallet = wallet_lock(wallet=wallet)
        lots = grants_locked(
            wallet=wallet,
            filters=Q(
                subscription=previous,
                kind=CreditGrant.Kind.PLAN,
                status=CreditGrant.Status.ACTIVE,
                period_start=period.start,
            ),
        )
        for grant in lots:
            share = credits_share(grant.credits, used_days, days_in_period)
            spent = Decimal(grant.credits) - grant.free
            keep = max(share - spent, Decimal(0))
            cut = grant.free - keep
            if cut > 0:
                expired += grant_expire_locked(
                    wallet=wallet,
                    grant=grant,
                    credits=cut,
                    key=f"change:{grant.pk}:{key}",
                    reference=f"subscription:{previous.pk}",
                    description=(
                        f"Plan change: the period's grant cut to its used share "
                        f"({format_decimal(share)} = {used_days} of {days_in_period} days)"
                    ),
                )
    if at > period.start:
        expired += plan_credits_close(subscription=previous, period=Period(period.start, at), ending=False, now=now)
    CreditGrant.objects.filter(
        subscription=previous, kind=CreditGrant.Kind.PLAN, status=CreditGrant.Status.ACTIVE
    ).update(subscription=successor)
    return expired
