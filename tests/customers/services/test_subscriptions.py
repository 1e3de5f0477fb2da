"""The subscription row helpers (subscription_row_advance, subscription_row_cancel), invoicing's
subscription_cancel racing itself, and subscription_periods, on a real database."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import Conflict, ValidationFailed
from customers import periods
from customers.models import Subscription
from customers.selectors import subscription_periods
from customers.services import subscription_row_advance, subscription_row_cancel
from invoicing.services import subscription_cancel
from tests.factories.catalog import PlanFactory, PlanVersionFactory
from tests.factories.customers import subscribe


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def advance(subscription: Subscription, now: datetime) -> Subscription:
    with transaction.atomic():
        return subscription_row_advance(subscription=subscription, now=now)


def cancel(subscription: Subscription, at: str, now: datetime) -> Subscription:
    with transaction.atomic():
        return subscription_row_cancel(subscription=subscription, at=at, now=now)


@pytest.fixture
def plan(db):
    plan = PlanFactory(key="pro")
    PlanVersionFactory(plan=plan, number=1, published=True, effective_from=utc(2025, 1, 1))
    return plan


@pytest.mark.django_db
def test_advance_anniversary_through_several_periods_from_the_original_anchor(plan):
    subscription = subscribe(plan=plan, billing="anniversary", start_at=utc(2026, 1, 31, 10))
    seen = []
    for now in (utc(2026, 2, 28, 10), utc(2026, 3, 31, 10), utc(2026, 4, 30, 10)):
        subscription = advance(subscription, now)
        seen.append((subscription.current_period_start, subscription.current_period_end))
    # Jan 31 -> Feb 28 -> Mar 31 -> Apr 30 -> May 31: each bound from the anchor, the 31st comes back
    assert seen == [
        (utc(2026, 2, 28, 10), utc(2026, 3, 31, 10)),
        (utc(2026, 3, 31, 10), utc(2026, 4, 30, 10)),
        (utc(2026, 4, 30, 10), utc(2026, 5, 31, 10)),
    ]
    subscription.refresh_from_db()
    assert subscription.current_period_start == utc(2026, 4, 30, 10)


@pytest.mark.django_db
def test_advance_calendar_then_cancel_at_period_end_ends_it_at_the_period_end(plan):
    subscription = subscribe(plan=plan, billing="calendar", start_at=utc(2026, 1, 15))
    subscription = advance(subscription, utc(2026, 2, 1))
    assert (subscription.current_period_start, subscription.current_period_end) == (utc(2026, 2, 1), utc(2026, 3, 1))
    subscription = cancel(subscription, "period_end", utc(2026, 2, 10))
    assert subscription.status == "active" and subscription.cancel_at_period_end
    assert subscription.canceled_at == utc(2026, 2, 10)
    # the run is late (Mar 2): it still ends at the period's end, Mar 1, and keeps the last period on the row
    subscription = advance(subscription, utc(2026, 3, 2))
    subscription.refresh_from_db()
    assert (subscription.status, subscription.ended_at) == ("ended", utc(2026, 3, 1))
    assert (subscription.current_period_start, subscription.current_period_end) == (utc(2026, 2, 1), utc(2026, 3, 1))
    with pytest.raises(Conflict):
        advance(subscription, utc(2026, 4, 1))


@pytest.mark.django_db
def test_advance_before_the_period_ends_is_a_conflict(plan):
    subscription = subscribe(plan=plan, start_at=utc(2026, 1, 15))
    with pytest.raises(Conflict):
        advance(subscription, utc(2026, 1, 31, 23, 59))


@pytest.mark.django_db
def test_a_version_effective_mid_january_applies_from_the_next_period(plan):
    PlanVersionFactory(plan=plan, number=2, published=True, effective_from=utc(2026, 1, 15))
    subscription = subscribe(plan=plan, start_at=utc(2026, 1, 1))
    pinned = subscribe(plan=plan, start_at=utc(2026, 1, 1), pinned_version=plan.versions.get(number=1))
    assert subscription.plan_version.number == 1  # January started before v2 took effect
    subscription = advance(subscription, utc(2026, 2, 1))
    assert subscription.plan_version.number == 2
    pinned = advance(pinned, utc(2026, 2, 1))
    assert pinned.plan_version.number == 1  # grandfathered
    # the periods table resolves each period's version by the same rule
    rows = subscription_periods(subscription=subscription, until=utc(2026, 2, 10))
    assert [(r.start, r.end, r.plan_version.number, r.is_current) for r in rows] == [
        (utc(2026, 1, 1), utc(2026, 2, 1), 1, False),
        (utc(2026, 2, 1), utc(2026, 3, 1), 2, True),
    ]


@pytest.mark.django_db
def test_pinned_subscription_periods_all_bill_the_pinned_version_without_reading_versions(
    plan, django_assert_num_queries
):
    PlanVersionFactory(plan=plan, number=2, published=True, effective_from=utc(2026, 1, 15))
    pinned = subscribe(plan=plan, start_at=utc(2026, 1, 1), pinned_version=plan.versions.get(number=1))
    pinned = advance(pinned, utc(2026, 2, 1))
    pinned = Subscription.objects.select_related("customer", "plan", "plan_version", "pinned_version").get(pk=pinned.pk)
    with django_assert_num_queries(0):  # plan and pinned version are on the row; no version query
        rows = subscription_periods(subscription=pinned, until=utc(2026, 2, 10))
    assert [(r.start, r.plan_version.number) for r in rows] == [(utc(2026, 1, 1), 1), (utc(2026, 2, 1), 1)]


@pytest.mark.django_db
def test_subscription_periods_lists_past_and_current_and_where_it_ended(plan):
    subscription = subscribe(plan=plan, start_at=utc(2026, 1, 15))
    for now in (utc(2026, 2, 1), utc(2026, 3, 1)):
        subscription = advance(subscription, now)
    rows = subscription_periods(subscription=subscription, until=utc(2026, 6, 1))
    # the row's current period (March) is the last one listed, even when `until` is later
    assert [(r.start, r.end, r.days) for r in rows] == [
        (utc(2026, 1, 15), utc(2026, 2, 1), 17),
        (utc(2026, 2, 1), utc(2026, 3, 1), 28),
        (utc(2026, 3, 1), utc(2026, 4, 1), 31),
    ]
    assert [r.is_current for r in rows] == [False, False, True]
    assert len(subscription_periods(subscription=subscription, until=utc(2026, 2, 15))) == 2
    subscription = cancel(subscription, "now", utc(2026, 3, 10, 8))
    last = subscription_periods(subscription=subscription, until=utc(2026, 6, 1))[-1]
    assert (last.is_current, last.ended_at) == (False, utc(2026, 3, 10, 8))


@pytest.mark.django_db
def test_cancel_rules(plan):
    subscription = subscribe(plan=plan, start_at=utc(2026, 1, 15))
    with pytest.raises(ValidationFailed) as bad:
        cancel(subscription, "later", utc(2026, 1, 20))
    assert bad.value.field == "at"
    subscription = cancel(subscription, "period_end", utc(2026, 1, 20))
    with pytest.raises(Conflict):
        cancel(subscription, "period_end", utc(2026, 1, 21))  # already set to end
    subscription = cancel(subscription, "now", utc(2026, 1, 22))  # escalating to now is allowed
    assert (subscription.status, subscription.ended_at, subscription.canceled_at) == (
        "ended",
        utc(2026, 1, 22),
        utc(2026, 1, 20),
    )
    with pytest.raises(Conflict):
        cancel(subscription, "now", utc(2026, 1, 23))


@pytest.mark.django_db(transaction=True)
def test_concurrent_cancels_one_wins_the_other_is_a_conflict(plan):
    subscription = subscribe(plan=plan, start_at=utc(2026, 1, 15))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            row = Subscription.objects.get(pk=subscription.pk)  # both read it active, then race
            barrier.wait(timeout=10)
            try:
                subscription_cancel(subscription=row, at="now", now=utc(2026, 1, 20))
                result = "ok"
            except Conflict:
                result = "conflict"
            with lock:
                outcomes.append(result)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["conflict", "ok"]
    subscription.refresh_from_db()
    assert subscription.status == "ended"


@pytest.mark.django_db
def test_advance_updates_the_instance_the_boundary_holds(plan):
    subscription = subscribe(plan=plan, start_at=utc(2026, 1, 15))
    returned = advance(subscription, utc(2026, 2, 1))
    assert returned is subscription
    assert (subscription.current_period_start, subscription.plan_version.number) == (utc(2026, 2, 1), 1)


class _Rollback(Exception):
    pass


@pytest.mark.django_db
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    anchor=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)).map(
        lambda d: d.replace(microsecond=0, tzinfo=UTC)
    ),
    billing=st.sampled_from(["calendar", "anniversary"]),
    interval=st.sampled_from(["month", "year"]),
)
def test_advancing_walks_the_pure_schedule(plan, anchor, billing, interval):
    """Property: n advances visit exactly ``periods.periods_between``'s first n+1 periods, tiling time."""
    plan.interval = interval
    plan.save()
    plan.versions.update(effective_from=utc(2020, 1, 1))
    try:
        with transaction.atomic():
            subscription = subscribe(plan=plan, billing=billing, start_at=anchor)
            seen = [(subscription.current_period_start, subscription.current_period_end)]
            for _ in range(3):
                subscription_row_advance(subscription=subscription, now=subscription.current_period_end)
                seen.append((subscription.current_period_start, subscription.current_period_end))
            raise _Rollback
    except _Rollback:
        pass
    expected = periods.periods_between(billing, anchor, interval, anchor, seen[-1][1])
    assert seen == [(p.start, p.end) for p in expected]
    assert all(a[1] == b[0] for a, b in zip(seen, seen[1:], strict=False))
